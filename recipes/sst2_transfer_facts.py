"""The facts docs/objectives.md's "Does pre-training help SST-2?" section states beside the
study tables, measured from the domain studies' own outputs and written to
docs/evidence/domain-en-long/facts.json:

- ``overlap``: the share of SST-2 dev and test 8-grams (whitespace tokens) that occur in the
  movie-review pre-training corpus, and how many sentences have any;
- ``weight_rms``: the root-mean-square of each pre-trained model's weights (token embedding,
  attention and feed-forward matrices) against a fresh init of the same config;
- ``train_accuracy``: the 2,000-sentence fine-tunes' training-batch accuracy at chosen steps,
  pre-trained and random init, per seed.

Run from the repository root after both studies (recipes/compare/domain-en.toml and
domain-en-long.toml, in runs/compare-domain-en and runs/compare-domain-en-long):

    python recipes/sst2_transfer_facts.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STUDY = ROOT / "runs" / "compare-domain-en-long"
CORPUS = ROOT / "runs" / "corpora" / "movie_reviews"
SST2 = ROOT.parent / "shared" / "data" / "labeled" / "en" / "sst2"
OUT = ROOT / "docs" / "evidence" / "domain-en-long" / "facts.json"
STEPS = (100, 200, 300, 400)


def grams(tokens: list[str], n: int = 8) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def overlap() -> dict:
    seen: set = set()
    for path in sorted(CORPUS.glob("*/*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            seen |= grams(line.split())
    out = {}
    for split in ("dev", "test"):
        rows = [line.split("\t", 1)[1] for line in (SST2 / f"{split}.tsv").read_text().splitlines()[1:]]
        found = [grams(r.split()) for r in rows]
        total, hits = sum(map(len, found)), sum(len(g & seen) for g in found)
        out[split] = {"sentences": len(rows), "8grams": total, "in_corpus": hits, "share": hits / total,
                      "sentences_with_any": sum(bool(g & seen) for g in found)}
    return out


def rms(model) -> dict:
    groups = {"token_embedding": "body.embed.tokens.weight", "attention": ".attn.", "feed_forward": ".ffn."}
    out = {}
    for group, key in groups.items():
        values = [p for n, p in model.named_parameters() if key in n and n.endswith("weight") and p.dim() == 2]
        out[group] = float(torch.cat([v.detach().flatten() for v in values]).pow(2).mean().sqrt())
    return out


def weight_rms() -> dict:
    from sesame.models import build_model
    from sesame.pipelines import load_any

    out = {}
    for seed in (0, 1):
        model = load_any(STUDY / "pretrain" / "mlm" / f"seed{seed}" / "model")[0]
        torch.manual_seed(seed)
        out[f"seed{seed}"] = {"pretrained": rms(model), "fresh_init": rms(build_model(model.config))}
    return out


def train_accuracy() -> dict:
    out = {}
    for arm in ("mlm", "random"):
        for seed in (0, 1):
            path = STUDY / "finetune" / "sst2-2k" / arm / f"seed{seed}" / "metrics.jsonl"
            rows = [json.loads(x) for x in path.read_text().splitlines()]
            out[f"{arm}/seed{seed}"] = {r["step"]: r["accuracy"] for r in rows if r.get("step") in STEPS
                                        and "accuracy" in r and r.get("event") is None}
    return out


def main() -> None:
    facts = {"command": "python recipes/sst2_transfer_facts.py", "overlap": overlap(), "weight_rms": weight_rms(),
             "train_accuracy": train_accuracy()}
    OUT.write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main()
