"""Training throughput and peak memory: sesame vs `transformers`, same shapes,
batch, optimizer (fused AdamW) and precision, measured in one run.

Each (implementation, shape) runs in a fresh subprocess so peak RSS is its own;
runs alternate A/B and repeat, and the best of the repeats is reported.

    python benchmarks/train_speed.py [--sizes small,base] [--precision fp32,bf16] [--repeats 2] \
        [--batch B] [--steps N] [--threads N] [--json docs/evidence/train-speed/results.json]

Every row (and the setting: command, versions, threads, load average) is written to
``--json``; the README's table is that file's rows.

sesame's MLM path scores only the masked 15 % of positions (``select=``), as its
MLM objective does; `transformers`' BertForMaskedLM computes logits everywhere.
The "sesame (all positions)" row shows the like-for-like cost.

MFU = model FLOPs per second / the peak this machine reaches on a large matrix
multiply in the same precision (measured at the start of the run). Model FLOPs
per token: 6 x (non-embedding parameters) + 6 x layers x seq x hidden (attention
scores and values, forward + backward) + 6 x hidden x vocab for the output
layer at the positions actually scored (all of them for transformers' MLM).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from evidence import EVIDENCE, context, save

SHAPES = {
    "small": dict(hidden=256, layers=4, heads=4, intermediate=1024),
    "base": dict(hidden=768, layers=12, heads=12, intermediate=3072),
}
VOCAB = {"bert": 30522, "gpt2": 50257}


def build(impl: str, family: str, shape: dict, seq: int):
    import torch

    h, n, a, i = shape["hidden"], shape["layers"], shape["heads"], shape["intermediate"]
    if impl.startswith("sesame"):
        from sesame.config import ModelConfig
        from sesame.models import build_model

        if family == "bert":
            cfg = ModelConfig(family="bert", vocab_size=VOCAB[family], hidden=h, layers=n, num_heads=a,
                              intermediate=i, max_positions=max(512, seq), heads=["mlm"])
        else:
            cfg = ModelConfig(family="gpt2", arch="decoder", vocab_size=VOCAB[family], hidden=h, layers=n,
                              num_heads=a, intermediate=i, max_positions=max(1024, seq), type_vocab_size=0,
                              norm_eps=1e-5, prenorm=True, embedding_norm=False, activation="gelu_tanh",
                              heads=["lm"])
        if impl == "sesame-all":  # like for like: MLM logits at every position
            model = build_model(cfg)

            def loss_fn(ids, labels, select):
                logits = model(ids).logits["mlm"]
                return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        else:  # the real training path: the objective's module on its transformed batch
            from sesame.objectives import CLM, MLM, Vocab

            vocab = Vocab(VOCAB[family], (0,), 0, 1)
            task = (MLM if family == "bert" else CLM)(vocab)
            module = task.build(cfg)
            model = module

            def loss_fn(ids, labels, select):
                if family == "bert":
                    batch = {"input_ids": ids, "labels": labels}
                else:
                    batch = {"input_ids": ids, "labels": torch.cat([ids[:, 1:], ids[:, :1] * 0 - 100], 1)}
                out = module(batch)
                return out.loss / out.count
    else:
        import transformers

        if family == "bert":
            cfg = transformers.BertConfig(vocab_size=VOCAB[family], hidden_size=h, num_hidden_layers=n,
                                          num_attention_heads=a, intermediate_size=i,
                                          max_position_embeddings=max(512, seq))
            model = transformers.BertForMaskedLM(cfg)
        else:
            cfg = transformers.GPT2Config(vocab_size=VOCAB[family], n_embd=h, n_layer=n, n_head=a, n_inner=i,
                                          n_positions=max(1024, seq))
            model = transformers.GPT2LMHeadModel(cfg)

        def loss_fn(ids, labels, select):
            if family == "bert":
                return model(input_ids=ids, labels=labels).loss
            return model(input_ids=ids, labels=ids).loss
    return model, loss_fn


def worker(spec: dict) -> dict:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model, loss_fn = build(spec["impl"], spec["family"], SHAPES[spec["size"]], spec["seq"])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    b, t = spec["batch"], spec["seq"]
    ids = torch.randint(0, VOCAB[spec["family"]], (b, t))
    select = torch.rand(b, t) < 0.15
    labels = torch.where(select, ids, torch.full_like(ids, -100))
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else None

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(ids, labels, select)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(spec["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    took = time.perf_counter() - start
    return {"tokens_per_s": b * t * spec["steps"] / took,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def flops_per_token(family: str, shape: dict, seq: int, impl: str) -> float:
    h, n, i = shape["hidden"], shape["layers"], shape["intermediate"]
    body = n * (4 * h * h + 2 * h * i)
    head_share = 0.15 if (family == "bert" and impl == "sesame") else 1.0
    return 6 * body + 6 * n * seq * h + 6 * h * VOCAB[family] * head_share


def peak_flops(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a large square matmul (fp32, or bf16 for bf16 runs)."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def run_spec(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker")
    p.add_argument("--sizes", default="small,base")
    p.add_argument("--families", default="bert,gpt2")
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, help="batch size (default 16 for small, 4 for base)")
    p.add_argument("--steps", type=int, help="timed steps (default 6 for small, 3 for base)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--threads", type=int, help="torch threads in every process (default: torch's choice)")
    p.add_argument("--json", default=str(EVIDENCE / "train-speed" / "results.json"), help="where the rows go")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    setting = context()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peaks = {p: peak_flops(p) for p in args.precision.split(",")}
    print("measured matmul peak: " + ", ".join(f"{p} {v / 1e9:,.0f} GFLOP/s" for p, v in peaks.items()))
    rows = []
    for family in args.families.split(","):
        for size in args.sizes.split(","):
            for precision in args.precision.split(","):
                batch = args.batch or (16 if size == "small" else 4)
                steps = args.steps or (6 if size == "small" else 3)
                impls = ["sesame", "transformers"] + (["sesame-all"] if family == "bert" else [])
                best: dict[str, dict] = {}
                for _ in range(args.repeats):
                    for impl in impls:
                        spec = dict(impl=impl, family=family, size=size, precision=precision, batch=batch,
                                    seq=args.seq, warmup=args.warmup, steps=steps, threads=args.threads)
                        r = run_spec(spec)
                        if impl not in best or r["tokens_per_s"] > best[impl]["tokens_per_s"]:
                            best[impl] = r
                ref = best["transformers"]
                for impl in impls:
                    r = best[impl]
                    mfu = r["tokens_per_s"] * flops_per_token(family, SHAPES[size], args.seq, impl) / peaks[precision]
                    rows.append((family, size, precision, batch, impl, r["tokens_per_s"],
                                 r["tokens_per_s"] / ref["tokens_per_s"], mfu, r["peak_rss_mb"],
                                 r["peak_rss_mb"] / ref["peak_rss_mb"]))
                    print("  " + " | ".join(str(x) if not isinstance(x, float) else f"{x:,.2f}" for x in rows[-1]),
                          flush=True)
    print("\n| model | size | precision | batch x seq | implementation | tokens/s | speed vs HF | MFU "
          "| peak RSS MB | memory vs HF |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    for fam, size, prec, batch, impl, tps, ratio, mfu, mem, mratio in rows:
        name = {"sesame": "sesame", "sesame-all": "sesame (all positions)", "transformers": "transformers"}[impl]
        print(f"| {fam} | {size} | {prec} | {batch}x{args.seq} | {name} | {tps:,.0f} | {ratio:.2f}x | {mfu:.1%} "
              f"| {mem:,.0f} | {mratio:.2f}x |")
    keys = ("family", "size", "precision", "batch", "implementation", "tokens_per_s", "speed_vs_transformers",
            "mfu", "peak_rss_mb", "memory_vs_transformers")
    save(args.json, setting, {"seq": args.seq, "repeats": args.repeats, "warmup": args.warmup,
                              "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
                              "rows": [dict(zip(keys, row)) for row in rows]})


if __name__ == "__main__":
    main()
