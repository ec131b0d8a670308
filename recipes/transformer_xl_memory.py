"""Does the recurrence memory help? Train recipes/transformer-xl-tiny-en.toml twice at the
same segment length (64): with memory (model.mem_len = 64) and without (mem_len = 0), the
second reusing the first's tokenizer and corpus; then read WikiText-2 *test* as 16
consecutive streams and report per-token perplexity with an evaluation memory of
0, 1x, 2x and 4x the segment (the perplexity vs context curve; the model trained without
memory at 0 and 1x).

    python recipes/transformer_xl_memory.py train --out runs/xl-memory [--steps 250] [--resume]
    python recipes/transformer_xl_memory.py eval --out runs/xl-memory --only mem64
    python recipes/transformer_xl_memory.py eval --out runs/xl-memory --only mem0

``train`` runs both models (each an ordinary ``sesame pretrain`` run directory under
--out: mem64/, mem0/); ``eval`` adds the chosen models' numbers to memory.json in
--evidence (default docs/evidence/transformer-xl) and redraws context.png."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

TEST = "../shared/data/corpora/en/wikitext-2/test.txt"
RECIPE = "recipes/transformer-xl-tiny-en.toml"
SEG = 64


def train(out: Path, steps: int, which: list[str], resume: bool = False) -> None:
    from sesame.config.run import load_config
    from sesame.pretrain import pretrain

    for name in which:
        mem = int(name[3:])
        sets = {"model.mem_len": mem, "train.steps": steps, "train.threads": 1, "train.eval_every": 0,
                "train.save_every": 50, "train.warmup": max(steps // 20, 1)}
        if name != "mem64":
            sets.update({"tokenizer.path": str(out / "mem64" / "tokenizer.json"),
                         "data.corpus": str(out / "mem64" / "corpus")})
        run = load_config(RECIPE, [f"{k}={v}" for k, v in sets.items()])
        t = time.time()
        summary = pretrain(run, out / name, resume=resume, progress=False, say=lambda s: print(s, flush=True))
        loss = "n/a (nothing left to train)" if summary["loss"] is None else f"{summary['loss']:.4f}"
        print(f"{name}: {summary['steps']} steps, loss {loss}, {time.time() - t:.0f} s", flush=True)


def test_tokens(tokenizer, work: Path):
    from sesame.config.data import DataConfig
    from sesame.data import Corpus, prepare
    from sesame.data.streams import corpus_stream

    if not (work / "meta.json").is_file():
        prepare([TEST], tokenizer, work, DataConfig(), progress=False)
    return corpus_stream(Corpus(work))


def perplexity(model, tokens, mem: int, streams: int = 16) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    from sesame.data.streams import SegmentStreams

    src = SegmentStreams(tokens, streams, SEG)
    memory = model.new_memory(mem) if mem else None
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(src.segments):
            b = src.batch(s, 0, 1, 0, 1)
            logits = model(torch.as_tensor(b["input_ids"]), cache=memory).logits["lm"]
            total += F.cross_entropy(logits.flatten(0, 1), torch.as_tensor(b["targets"]).flatten(),
                                     reduction="sum").item()
            count += b["targets"].size
    return math.exp(total / count), count


def evaluate(out: Path, evidence: Path, which: list[str]) -> None:
    import torch

    from sesame.models.io import load_model
    from sesame.tokenize import Tokenizer

    torch.set_num_threads(1)
    tokens = test_tokens(Tokenizer.load(out / "mem64" / "tokenizer.json"), out / "test-corpus")
    grid = {"mem64": [0, 64, 128, 256], "mem0": [0, 64]}
    file = evidence / "memory.json"
    results = json.loads(file.read_text()) if file.is_file() else {}
    results.update({"segment": SEG, "test_file": TEST, "test_tokens": int(len(tokens)), "streams": 16})
    results.setdefault("models", {})
    evidence.mkdir(parents=True, exist_ok=True)
    for name in which:
        model, _ = load_model(out / name / "model")
        model.eval()
        metrics = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        losses = [r["loss"] for r in metrics if r.get("loss") is not None and "event" not in r]
        entry = results["models"].setdefault(name, {"eval_ppl_by_memory": {}})
        entry.update({"train_mem_len": int(name[3:]), "final_train_loss": losses[-1] if losses else None,
                      "train_steps": max((r.get("step", 0) for r in metrics), default=None),
                      "config": (out / name / "config.toml").read_text()})
        for mem in grid[name]:  # each number is saved as soon as it is measured (reruns skip it)
            if str(mem) in entry["eval_ppl_by_memory"]:
                continue
            t = time.time()
            ppl, n = perplexity(model, tokens, mem)
            entry["eval_ppl_by_memory"][str(mem)] = ppl
            print(f"{name} eval memory {mem:>3}: ppl {ppl:.2f} over {n:,} tokens ({time.time() - t:.0f} s)", flush=True)
            tmp = file.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(file)
    plot(results, evidence / "context.png")
    print(json.dumps({k: v["eval_ppl_by_memory"] for k, v in results["models"].items()}, indent=2))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, label in (("mem64", "trained with memory 64"), ("mem0", "trained without memory")):
        if name not in results["models"]:
            continue
        row = results["models"][name]["eval_ppl_by_memory"]
        xs = [SEG + int(m) for m in row]
        ax.plot(xs, list(row.values()), marker="o", label=label)
    ax.set_xlabel("attention context at evaluation (segment 64 + memory)")
    ax.set_ylabel("WikiText-2 test perplexity (per BPE token)")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["train", "eval"])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--only", nargs="+", default=["mem64", "mem0"], choices=["mem64", "mem0"])
    p.add_argument("--evidence", default="docs/evidence/transformer-xl")
    p.add_argument("--resume", action="store_true", help="continue interrupted training runs")
    args = p.parse_args()
    if args.stage == "train":
        train(Path(args.out), args.steps, args.only, args.resume)
    else:
        evaluate(Path(args.out), Path(args.evidence), args.only)


if __name__ == "__main__":
    sys.exit(main())
