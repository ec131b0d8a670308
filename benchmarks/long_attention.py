"""Benchmark: one attention layer (hidden 256, 4 heads of 64, batch 1) at T = 1k, 4k,
16k and 64k tokens: forward + backward time and peak memory for every kernel, and
the output error against exact attention.

Every (kernel, T) runs in its own child process, forked from a parent that has
imported torch, sesame and transformers once, so peak memory is that process's
peak resident set (``ru_maxrss``) minus its resident set just before the forward
pass (inputs and weights are built by then). The layer is a freshly initialised
``SelfAttention`` (PyTorch's default Linear init, the same q/k/v/out weights for
every kernel); the input is N(0, 1). "exact" is SDPA on the same weights and
input, computed in the child after its own measurement (SDPA's CPU kernel is
memory-efficient, so it fits where a T×T matrix would not); "naive" is the
explicit T×T softmax (``dense_attention``) whose memory is quadratic. Hugging
Face's Longformer and Reformer layers (transformers, test-only) run where they can.
Error = ‖out − exact‖ / ‖exact‖ of the layer output. A row that exceeds its time
limit or memory is recorded as such, not dropped.

    python benchmarks/long_attention.py [--lengths 1024 4096 16384 65536] [--threads 1]
        [--kernels ...] [--exact-max 16384] [--merge]   # --merge adds rows to results.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HIDDEN, HEADS = 256, 4
OPTIONS = {  # the kernels' settings in this benchmark
    "full": {}, "naive": {},
    "longformer": {"window": 512},
    "linear": {"chunk": 64},
    "performer": {"features": 256, "chunk": 64},
    "linformer": {"k": 256},
    "lsh": {"chunk": 64, "rounds": 2},
    "hf-longformer": {"attention_window": 512},
    "hf-reformer-lsh": {"lsh_attn_chunk_length": 64, "num_hashes": 2},
}
NAIVE_MAX = 4096  # the explicit T×T path: 4 heads x 16k² x 4 bytes is 4.3 GB per matrix
FULL_MAX = 16384  # SDPA's time is O(T²): 64k would be 16x the 16k row, minutes on one core
EXACT_MAX = 16384  # SDPA reference for the error column (64k would take minutes on one core)


def rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def child(kernel: str, t: int) -> dict:
    import torch

    from sesame.config import ModelConfig
    from sesame.nn.attention import SelfAttention
    from sesame.nn.layout import Layout

    torch.manual_seed(0)
    base = dict(vocab_size=100, hidden=HIDDEN, layers=1, num_heads=HEADS, intermediate=4 * HIDDEN,
                max_positions=t, dropout=0.0, attention_dropout=0.0)
    reference = SelfAttention(ModelConfig(**base))
    x = torch.randn(1, t, HIDDEN)
    layout = Layout()
    hf_layer = None
    if kernel.startswith("hf-"):
        hf_layer = hf_module(kernel, t, reference)
        layer = hf_layer
    else:
        name = "full" if kernel == "naive" else kernel
        layer = SelfAttention(ModelConfig(**base, attention=name,
                                          attention_options=OPTIONS[kernel] if name != "full" else {}))
        layer.load_state_dict(reference.state_dict(), strict=False)  # same q/k/v/out; kernel weights its own

    def run():
        xi = x.clone().requires_grad_()
        if hf_layer is not None:
            out = hf_forward(kernel, layer, xi)
        else:
            out = layer(xi, layout, maps=[] if kernel == "naive" else None)
        out.float().pow(2).mean().backward()
        return out.detach()

    base_rss = rss_kb()
    start = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - start
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    if t <= 1024:  # short runs: best of three
        for _ in range(2):
            start = time.perf_counter()
            run()
            seconds = min(seconds, time.perf_counter() - start)
    row = {"kernel": kernel, "T": t, "seconds": round(seconds, 4), "peak_mb": round(max(peak_mb, 0.0), 1),
           "options": OPTIONS[kernel]}
    if t <= EXACT_MAX and kernel != "full" and hf_layer is None:  # HF layers stop before the out projection
        with torch.no_grad():
            exact = reference(x, layout)
        row["rel_error"] = float((out - exact).norm() / exact.norm())
    return row


def hf_module(kernel: str, t: int, reference):
    """HF's Longformer / Reformer LSH self-attention layer, with our q/k/v weights."""
    import torch
    import transformers

    ws, bs = reference.qkv.weight.detach().split(HIDDEN), reference.qkv.bias.detach().split(HIDDEN)
    if kernel == "hf-longformer":
        cfg = transformers.LongformerConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_hidden_layers=1,
                                            attention_window=[512], attention_probs_dropout_prob=0.0)
        layer = transformers.models.longformer.modeling_longformer.LongformerSelfAttention(cfg, 0)
        with torch.no_grad():
            for lin, w, b in zip((layer.query, layer.key, layer.value), ws, bs):
                lin.weight.copy_(w), lin.bias.copy_(b)
        return layer
    cfg = transformers.ReformerConfig(hidden_size=HIDDEN, num_attention_heads=HEADS,
                                      attention_head_size=HIDDEN // HEADS, attn_layers=["lsh"],
                                      lsh_attn_chunk_length=64, num_hashes=2,
                                      num_buckets=max(2, 2 * t // 64), max_position_embeddings=t,
                                      lsh_attention_probs_dropout_prob=0.0, hash_seed=0, is_decoder=False,
                                      axial_pos_embds=False)
    layer = transformers.models.reformer.modeling_reformer.LSHSelfAttention(cfg)
    with torch.no_grad():
        layer.query_key.weight.copy_(ws[0]), layer.value.weight.copy_(ws[2])
    return layer


def hf_forward(kernel, layer, x):
    import torch

    t = x.shape[1]
    if kernel == "hf-longformer":
        zeros = torch.zeros(1, t)
        false = torch.zeros(1, t, dtype=torch.bool)
        return layer(x, attention_mask=zeros, is_index_masked=false, is_index_global_attn=false,
                     is_global_attn=False)[0]
    return layer(x)[0]


def forked(kernel: str, t: int, limit: float) -> dict:
    """Run ``child`` in a forked process (no re-import), with a time limit."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target():
        try:
            row = child(kernel, t)
        except Exception as err:  # noqa: BLE001 - reported as the row's result
            row = {"kernel": kernel, "T": t, "failed": f"{type(err).__name__}: {str(err)[:300]}"}
        send.send_bytes(json.dumps(row).encode())

    proc = ctx.Process(target=target)
    proc.start()
    row, start = None, time.time()
    while row is None and time.time() - start < limit:
        if recv.poll(0.5):
            row = json.loads(recv.recv_bytes())
        elif not proc.is_alive() and not recv.poll(0.1):
            break
    if row is None:
        row = {"kernel": kernel, "T": t, "skipped": f"over the {limit} s limit per run"} if proc.is_alive() \
            else {"kernel": kernel, "T": t, "failed": f"exit code {proc.exitcode} (out of memory?)"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return row


KERNELS = ["full", "naive", "longformer", "linear", "performer", "linformer", "lsh", "hf-longformer",
           "hf-reformer-lsh"]


def parent(args) -> int:
    global EXACT_MAX
    EXACT_MAX = args.exact_max  # read by the forked children
    kernels = args.kernels
    import torch
    import transformers  # noqa: F401 - imported once, before the children fork

    import sesame.nn.attention  # noqa: F401

    torch.set_num_threads(args.threads)
    rows = []
    started = time.time()
    for t in args.lengths:
        for kernel in kernels:
            if kernel == "naive" and t > NAIVE_MAX:
                need = 3 * HEADS * t * t * 4 / 2**30
                rows.append({"kernel": kernel, "T": t, "skipped": f"needs at least {need:.0f} GiB for three "
                                                                  "T×T float32 matrices (scores, probabilities, grad)"})
                print(f"{kernel:>16} T={t:>6}: skipped ({rows[-1]['skipped']})", flush=True)
                continue
            if kernel == "full" and t > FULL_MAX:
                ref = next((r for r in rows if r["kernel"] == "full" and r["T"] == FULL_MAX and "seconds" in r), None)
                guess = f"; about {ref['seconds'] * (t / FULL_MAX) ** 2:.0f} s by O(T²) from the 16k row" if ref else ""
                rows.append({"kernel": kernel, "T": t, "skipped": f"not run: over the time budget{guess}"})
                save(args, rows, started)
                print(f"{kernel:>16} T={t:>6}: {rows[-1]['skipped']}", flush=True)
                continue
            limit = args.full_limit if kernel in ("full", "hf-longformer", "hf-reformer-lsh") else args.limit
            row = forked(kernel, t, limit)
            rows.append(row)
            save(args, rows, started)  # after every row, so a cut-short run keeps what it measured
            shown = (f"{row['seconds']:8.3f} s {row['peak_mb']:9.1f} MB" + (
                f"  err {row['rel_error']:.3f}" if "rel_error" in row else "")) if "seconds" in row else \
                row.get("skipped") or row.get("failed")
            print(f"{kernel:>16} T={t:>6}: {shown}", flush=True)
    save(args, rows, started)
    rows = json.loads((Path(args.out) / "results.json").read_text())["rows"]
    plot(rows, Path(args.plot))
    print(table(rows))
    return 0


def previous(args) -> tuple[list, list]:
    """(runs, rows) already in results.json, when --merge."""
    path = Path(args.out) / "results.json"
    if not args.merge or not path.is_file():
        return [], []
    data = json.loads(path.read_text())
    return data["runs"], data["rows"]


def save(args, rows, started) -> None:
    run = {"threads": args.threads, "wall_seconds": round(time.time() - started, 1), "hidden": HIDDEN,
           "heads": HEADS, "batch": 1, "cpu": cpu_name(), "torch": torch_version(),
           "load_average_at_end": round(os.getloadavg()[0], 1),
           "command": "python benchmarks/long_attention.py " + " ".join(sys.argv[1:]),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    runs, old = previous(args)
    runs = [r for r in runs if r.get("started") != run["started"]]  # this run's record, once
    new = {(r["kernel"], r["T"]) for r in rows}
    merged = [r for r in old if (r["kernel"], r["T"]) not in new] + rows
    merged.sort(key=lambda r: (KERNELS.index(r["kernel"]), r["T"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"runs": runs + [run], "rows": merged}, indent=1))
    tmp.replace(out / "results.json")


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def torch_version() -> str:
    import torch

    return torch.__version__


def table(rows) -> str:
    """Markdown: seconds / MB per kernel and T, error where measured."""
    lengths = sorted({r["T"] for r in rows})
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    cell = {(r["kernel"], r["T"]): r for r in rows}
    exact = " / ".join(f"{t // 1024}k" for t in lengths if t <= EXACT_MAX)
    head = "| kernel | " + " | ".join(f"T={t:,}: s / MB" for t in lengths) + f" | error at {exact} |"
    lines = [head, "|" + "---|" * (len(lengths) + 2)]
    for k in kernels:
        parts = []
        for t in lengths:
            r = cell.get((k, t), {})
            parts.append(f"{r['seconds']:.2f} / {r['peak_mb']:.0f}" if "seconds" in r else
                         ("> limit" if "limit" in r.get("skipped", "") else "not run" if "skipped" in r
                          else "failed" if "failed" in r else "—"))
        errs = [f"{cell[(k, t)]['rel_error']:.3f}" for t in lengths
                if "rel_error" in cell.get((k, t), {})]
        lines.append(f"| {k} | " + " | ".join(parts) + f" | {' / '.join(errs) or '—'} |")
    return "\n".join(lines)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k in dict.fromkeys(r["kernel"] for r in rows):
        pts = [(r["T"], r["seconds"], r["peak_mb"]) for r in rows if r["kernel"] == k and "seconds" in r]
        if not pts:
            continue
        ts, secs, mbs = zip(*pts)
        style = "--" if k.startswith("hf-") else "-"
        axes[0].plot(ts, secs, style, marker="o", label=k)
        axes[1].plot(ts, [max(m, 1.0) for m in mbs], style, marker="o", label=k)
    for ax, what in zip(axes, ("forward + backward seconds", "peak memory (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens T")
        ax.set_title(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("one attention layer, hidden 256, 4 heads, batch 1, CPU")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=120, help="seconds per efficient-kernel run")
    ap.add_argument("--full-limit", type=int, default=150, help="seconds per full / HF run")
    ap.add_argument("--kernels", nargs="+", default=KERNELS, choices=KERNELS)
    ap.add_argument("--exact-max", type=int, default=EXACT_MAX, help="longest T with an error against SDPA")
    ap.add_argument("--merge", action="store_true", help="add these rows to the existing results.json")
    ap.add_argument("--out", default=str(ROOT / "docs" / "evidence" / "long-attention"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "long_attention.png"))
    return parent(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
