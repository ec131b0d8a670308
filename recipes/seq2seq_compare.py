"""MASS vs BART vs T5 span corruption vs no pre-training: one encoder-decoder shape, one
tokenizer, one prepared corpus and the same pre-training budget (steps x batch x window) for
each objective, then the same fine-tuning budget on each translation set and seed. Prints a
Markdown table of BLEU and chrF (mean, min, max over seeds) and writes ``--out/results.json``,
``--out/results.md`` and ``--out/bleu.png``.

    python recipes/seq2seq_compare.py --out runs/compare-seq2seq --steps 3000 --ft-steps 2000 \\
        --datasets multi30k tatoeba --seeds 0 1

The shape is ``--preset`` (default ``t5-tiny``) with ``--set`` overrides (``model.*``,
``train.*``) for every pre-training run. The tokenizer (unigram) carries ``<s>``, ``<mask>`` and
100 ``<extra_id_N>`` sentinels, so every objective trains on the same vocabulary. "none" is the
same architecture from random initialisation (``transfer_layers = 'none'``), fine-tuned from
the t5-span run's directory (its weights are discarded; only the config and tokenizer are read).
T5's decoder reads ~25 % of the window where BART's and MASS's read all of it, so equal steps
are equal data, not equal FLOPs: the table says so."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

OBJECTIVES = ("t5-span", "bart", "mass")
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>", "<mask>"] + [f"<extra_id_{i}>" for i in range(100)]
BOOKS = ["../shared/data/corpora/en/gutenberg", "../shared/data/corpora/en/austen",
         "../shared/data/corpora/en/tinyshakespeare", "../shared/data/corpora/en/moby-dick/moby_dick.txt"]


def pretrain_all(args, out: Path, say) -> dict[str, Path]:
    from sesame.config import load_config
    from sesame.pretrain import pretrain

    inputs = ", ".join(repr(p) for p in args.inputs)
    base = [f"data.inputs=[{inputs}]", f"data.seq_len={args.seq_len}", f"train.steps={args.steps}",
            f"train.batch_size={args.batch_size}", "train.eval_every=0", "train.save_every=100000",
            "tokenizer.kind='unigram'", f"tokenizer.vocab_size={args.vocab_size}",
            f"tokenizer.special_tokens={SPECIALS!r}", *args.sets]
    dirs, first = {}, None
    for name in OBJECTIVES:
        shared = [] if first is None else [f"tokenizer.path={str(first / 'tokenizer.json')!r}",
                                           f"data.corpus={str(first / 'corpus')!r}"]
        run = load_config(args.preset, [*base, f"objective.name={name!r}", *shared])
        run_dir = out / f"pretrain-{name}"
        summary = pretrain(run, run_dir, progress=False, say=lambda _: None)
        say(f"pre-trained {name}: {summary['steps']} steps, final loss {summary['loss']:.4f}")
        dirs[name] = run_dir / "model"
        first = first or run_dir
    return dirs


def finetune_all(args, models: dict[str, Path], out: Path, say) -> list[dict]:
    from sesame.finetune import finetune

    rows = []
    for dataset in args.datasets:
        for init in (*OBJECTIVES, "none"):
            for seed in args.seeds:
                src = models["t5-span" if init == "none" else init]
                run = out / f"ft-{dataset}-{init}-seed{seed}"
                summary = finetune(src, dataset, run, {"steps": args.ft_steps, "seed": seed,
                                                       "batch_size": args.batch_size},
                                   {"max_target_length": 48}, {"transfer_layers": "none" if init == "none" else "all"},
                                   max_train=args.max_train, max_eval=args.max_eval, progress=False,
                                   say=lambda _: None)
                scores = {split: r["metrics"] for split, r in summary["eval"].items()}
                rows.append({"dataset": dataset, "pretraining": init, "seed": seed, "run": str(run),
                             "scores": scores})
                say(f"{dataset} {init} seed {seed}: {json.dumps(scores)}")
    return rows


def table(rows: list[dict], split: str) -> str:
    lines = [f"| data set | pre-training | {split} BLEU (mean, min-max) | {split} chrF (mean, min-max) | seeds |",
             "|---|---|---:|---:|---:|"]
    order = (*OBJECTIVES, "none")
    keys = sorted({(r["dataset"], r["pretraining"]) for r in rows}, key=lambda k: (k[0], order.index(k[1])))
    for dataset, init in keys:
        runs = [r["scores"][split] for r in rows if (r["dataset"], r["pretraining"]) == (dataset, init)]
        cell = []
        for metric in ("bleu", "chrf"):
            v = [100 * m[metric] for m in runs]
            cell.append(f"{statistics.mean(v):.2f} ({min(v):.2f}-{max(v):.2f})")
        lines.append(f"| {dataset} | {init} | {cell[0]} | {cell[1]} | {len(runs)} |")
    return "\n".join(lines)


def plot(rows: list[dict], split: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    inits = (*OBJECTIVES, "none")
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * len(datasets), 3.2))
    width = 0.8 / len(inits)
    for j, init in enumerate(inits):
        means = [statistics.mean(100 * r["scores"][split]["bleu"] for r in rows
                                 if r["dataset"] == d and r["pretraining"] == init) for d in datasets]
        ax.bar([i + j * width for i in range(len(datasets))], means, width, label=init)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(datasets))], datasets)
    ax.set_ylabel(f"{split} BLEU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="t5-tiny")
    p.add_argument("--inputs", nargs="+", default=BOOKS)
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps per objective")
    p.add_argument("--ft-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--datasets", nargs="+", default=["multi30k", "tatoeba"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--max-train", type=int)
    p.add_argument("--max-eval", type=int)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = pretrain_all(args, out, print)
    rows = finetune_all(args, models, out, print)
    split = "test" if all("test" in r["scores"] for r in rows) else "dev"
    md = table(rows, split)
    print(md)
    note = ("Equal pre-training steps x batch x window for every objective (equal data, not equal FLOPs: "
            "t5-span's decoder reads about a quarter of the window).")
    (out / "results.md").write_text(md + "\n\n" + note + "\n")
    plot(rows, split, out / "bleu.png")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "split": split, "rows": rows, "table": md,
                                                  "note": note}, indent=2) + "\n")


if __name__ == "__main__":
    main()
