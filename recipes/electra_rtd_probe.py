"""Does an ELECTRA discriminator tell replaced tokens from originals? Replace 15 % of the
tokens of the held-out tail (the end of Northanger Abbey, seen by no recipe's training part)
with tokens drawn uniformly from the vocabulary (ids from 1,000 up, past the special and most
frequent ones) and report the discriminator's mean logit on each kind and the AUC (the
chance that a replaced token scores above an original).

    python recipes/electra_rtd_probe.py runs/compare-objectives-en/pretrain/electra/seed0/model \\
        --out docs/evidence/objectives-en/probes/electra-rtd-seed0.json"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

TEXT = "../shared/data/corpora/en/austen/northangerabbey.txt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=64)
    args = p.parse_args()

    from sesame.models import load_model
    from sesame.tokenize import Tokenizer

    loaded = load_model(args.model_dir)
    model = (loaded[0] if isinstance(loaded, tuple) else loaded).eval()
    tok = Tokenizer.load(Path(args.model_dir) / "tokenizer.json")
    encoded = tok.encode(Path(TEXT).read_text(encoding="utf-8")[-60_000:])
    ids = list(encoded.ids if hasattr(encoded, "ids") else encoded)
    ids = torch.tensor(ids[: args.rows * 128]).view(args.rows, 128)
    gen = torch.Generator().manual_seed(0)
    chosen = torch.rand(ids.shape, generator=gen) < 0.15
    fake = ids.clone()
    fake[chosen] = torch.randint(1000, model.config.vocab_size, (int(chosen.sum()),), generator=gen)
    with torch.no_grad():
        logits = model(fake).logits["rtd"].float()
    replaced = fake != ids
    r, o = logits[replaced], logits[~replaced]
    auc = float((r[:, None] > o[None, :]).float().mean() + 0.5 * (r[:, None] == o[None, :]).float().mean())
    result = {"command": f"python recipes/electra_rtd_probe.py {args.model_dir} --out {args.out}",
              "replaced": int(replaced.sum()), "original": int((~replaced).sum()),
              "mean_logit_replaced": float(r.mean()), "mean_logit_original": float(o.mean()),
              "predicted_replaced": float((logits > 0).float().mean()), "auc": auc}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
