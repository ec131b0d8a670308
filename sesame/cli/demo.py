"""`sesame demo`: the newcomer's first command. Builds a tiny model from a preset,
prints its summary and times a forward + backward pass on this machine."""
from __future__ import annotations

import time


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="build a tiny model and show what sesame does",
                       description="Build a tiny BERT from the `bert-tiny` preset (or --preset), print "
                                   "its summary and time one training step on random tokens.")
    p.add_argument("--preset", default="bert-tiny", help="preset to build (default: bert-tiny)")
    p.add_argument("--batch", type=int, default=8, help="sequences per step (default: 8)")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from sesame.config import load_config
    from sesame.models import build_model

    config = load_config(args.preset).model
    model = build_model(config)
    print(model.summary())
    length = min(128, config.max_positions)
    ids = torch.randint(0, config.vocab_size, (args.batch, length))
    head = "lm" if "lm" in config.heads else config.heads[0]
    start = time.perf_counter()
    out = model(ids)
    logits = out.logits[head]
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2), ids.flatten()) if logits.dim() == 3 else logits.sum()
    loss.backward()
    took = time.perf_counter() - start
    print(f"one forward+backward on {args.batch}x{length} tokens: {took * 1000:.0f} ms "
          f"({args.batch * length / took:,.0f} tokens/s), {head} logits {tuple(logits.shape)}, "
          f"loss {loss.item():.3f} (random init: ln V = {torch.tensor(config.vocab_size).log().item():.3f})")
    return 0
