"""Greedy generation speed: sesame's `generate` vs `transformers`' `generate` on the
same GPT-2 small weights (random init, converted both ways), same prompts, in one
run. Rows: both sides in fp32 and in bf16, and sesame with int8 weight-only layers
(`sesame generate --weights int8`; transformers has no built-in CPU equivalent).
Reports new tokens per second at batch 1 and 8, the speed against transformers fp32
(its default) and against transformers in the same precision, and whether the tokens
are the same as transformers' in that precision (int8: the share of tokens equal to
sesame's fp32 ones).

    python benchmarks/generate_speed.py [--new 64] [--prompt 32] [--repeats 3] [--threads N] \
        [--weights fp32,bf16,int8] [--batches 1,8] [--json docs/evidence/generate-speed/results.json]

Every row and the setting (command, versions, threads, load average) go to ``--json``.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from evidence import EVIDENCE, context, save


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--weights", default="fp32,bf16,int8", help="the formats to time (fp32 always; a CPU "
                   "without bf16 matrix units runs bf16, and int8 on more than 16 rows, very slowly)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default=str(EVIDENCE / "generate-speed" / "results.json"), help="where the rows go")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setting = context()
    rows = []

    import transformers

    from sesame.generate import generate
    from sesame.models.hf import from_hf
    from sesame.models.quantize import convert_weights

    torch.manual_seed(0)
    hf32 = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf32.save_pretrained(tmp)
        ours, _ = from_hf(tmp)
    ours.eval()
    chosen = args.weights.split(",")
    if "fp32" not in chosen:
        raise SystemExit("--weights must include fp32 (the reference row)")
    hf = {"fp32": hf32, "bf16": copy.deepcopy(hf32).to(torch.bfloat16) if "bf16" in chosen else None}
    mine = {w: convert_weights(copy.deepcopy(ours), w) for w in ("fp32", "bf16", "int8") if w in chosen}
    runs = [(who, w) for who, w in (("transformers", "fp32"), ("transformers", "bf16"), ("sesame", "fp32"),
                                    ("sesame", "bf16"), ("sesame", "int8")) if w in chosen]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads")
    print("| batch | implementation | weights | new tokens/s | ms per step | vs HF fp32 | vs HF same precision "
          "| same tokens |")
    print("|---:|---|---|---:|---:|---:|---:|---|")
    for b in map(int, args.batches.split(",")):
        ids = torch.randint(0, 50257, (b, args.prompt))
        best, outs = {}, {}
        for _ in range(args.repeats):
            for key in runs:
                who, weights = key
                start = time.perf_counter()
                with torch.no_grad():
                    if who == "sesame":
                        out = generate(mine[weights], ids, max_new_tokens=args.new).sequences
                    else:
                        out = hf[weights].generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                                                   min_new_tokens=args.new, do_sample=False, pad_token_id=0)
                took = time.perf_counter() - start
                best[key] = min(best.get(key, took), took)
                outs[key] = out[:, args.prompt:]
        for key in runs:
            who, weights = key
            twin = ("transformers", weights) if weights in hf else ("sesame", "fp32")
            if key == twin:
                same = ""
            else:
                agree = (outs[key] == outs[twin]).float().mean().item()
                same = f"{agree:.0%} of {'HF ' + weights if weights in hf else 'sesame fp32'}"
            vs_same = f"{best[('transformers', weights)] / best[key]:.2f}x" if weights in hf else "—"
            print(f"| {b} | {who} | {weights} | {b * args.new / best[key]:,.1f} | {1000 * best[key] / args.new:.1f} | "
                  f"{best[('transformers', 'fp32')] / best[key]:.2f}x | {vs_same} | {same} |", flush=True)
            rows.append({"batch": b, "implementation": who, "weights": weights,
                         "tokens_per_s": b * args.new / best[key],
                         "ms_per_step": 1000 * best[key] / args.new,
                         "vs_transformers_fp32": best[("transformers", "fp32")] / best[key],
                         "vs_transformers_same_precision": (best[("transformers", weights)] / best[key]
                                                            if weights in hf else None),
                         "same_tokens": None if key == twin else agree, "same_tokens_as": None if key == twin else
                         ("transformers " if weights in hf else "sesame ") + twin[1]})
    save(args.json, setting, {"prompt": args.prompt, "new_tokens": args.new, "repeats": args.repeats,
                              "transformers": transformers.__version__, "rows": rows})


if __name__ == "__main__":
    main()
