"""Greedy generation speed: sesame's `generate` vs `transformers`' `generate` on the
same GPT-2 small weights (random init, converted both ways), same prompts, in one
run. Reports new tokens per second at batch 1 and 8 and checks both produce the
same tokens.

    python benchmarks/generate_speed.py [--new 64] [--prompt 32] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="1,8")
    args = p.parse_args()

    import transformers

    from sesame.generate import generate
    from sesame.models.hf import from_hf

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours, _ = from_hf(tmp)
    ours.eval()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads")
    print("| batch | implementation | new tokens/s | ms per step | speed vs HF |")
    print("|---:|---|---:|---:|---:|")
    for b in map(int, args.batches.split(",")):
        ids = torch.randint(0, 50257, (b, args.prompt))
        best = {}
        outs = {}
        for _ in range(args.repeats):
            for name in ("sesame", "transformers"):
                start = time.perf_counter()
                with torch.no_grad():
                    if name == "sesame":
                        out = generate(ours, ids, max_new_tokens=args.new).sequences
                    else:
                        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                                          min_new_tokens=args.new, do_sample=False, pad_token_id=0)
                took = time.perf_counter() - start
                best[name] = min(best.get(name, took), took)
                outs[name] = out
        same = torch.equal(outs["sesame"], outs["transformers"])
        for name in ("sesame", "transformers"):
            tps = b * args.new / best[name]
            print(f"| {b} | {name} | {tps:,.1f} | {1000 * best[name] / args.new:.1f} | "
                  f"{best['transformers'] / best[name]:.2f}x |")
        print(f"(batch {b}: identical tokens: {same})")


if __name__ == "__main__":
    main()
