"""`sesame demo`: the newcomer's first command. With nothing downloaded it trains
a WordPiece tokenizer and a tiny BERT on text every Python installation ships
(the language reference topics of ``pydoc_data``), or on a corpus you name,
and shows fill-mask predictions before and after training and the loss curve."""
from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "The [MASK] statement is used to leave the innermost loop.",
    "A function is defined with the [MASK] keyword.",
    "If the key is not found, a [MASK] is raised.",
    "The for statement is used to iterate over the elements of a [MASK].",
]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="pre-train a tiny BERT in a few minutes and show what it learned",
        description="Train a tokenizer and a tiny BERT (masked LM) on an embedded corpus (Python's own "
                    "documentation topics) or --corpus, print fill-mask predictions before and after, and "
                    "write the loss plot. Runs in a few minutes on 2 CPU cores.",
    )
    p.add_argument("--corpus", help="a text file, folder or glob to train on instead of the embedded one")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set model.layers=4")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def embedded_corpus(path: Path) -> Path:
    """Python's documentation topics as plain text, one topic per document."""
    from pydoc_data.topics import topics

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(text.strip() for _, text in sorted(topics.items())) + "\n", encoding="utf-8")
    return path


def show(title: str, fill) -> None:
    print(title)
    for sentence, top in zip(SENTENCES, fill(SENTENCES, top_k=3)):
        guesses = ", ".join(f"{t['token']} ({t['score']:.2f})" for t in top)
        print(f"  {sentence:<62} -> {guesses}")


def run(args) -> int:
    import torch

    from sesame.config import load_config
    from sesame.models import build_model
    from sesame.pipelines import FillMask
    from sesame.pretrain import fit_model_to_tokenizer, get_tokenizer, pretrain
    from sesame.train.plot import plot_run

    out = Path(args.out)
    corpus = args.corpus or str(embedded_corpus(out / "text" / "python-topics.txt"))
    config = load_config("bert-tiny", [
        f"data.inputs=[{corpus!r}]", "data.seq_len=128", "tokenizer.vocab_size=6000",
        f"train.steps={args.steps}", "train.batch_size=32", "train.lr=1e-3", "train.warmup=100",
        "train.eval_every=200", "train.save_every=400", "train.log_every=20", "train.precision=auto",
        "model.dropout=0.0", "model.attention_dropout=0.0", *args.overrides,
    ])
    tok, note = get_tokenizer(config, out, progress=not args.no_progress)
    print(note)
    config, _ = fit_model_to_tokenizer(config, tok)
    torch.manual_seed(config.train.seed)
    show("before training (random weights):", FillMask(build_model(config.model).eval(), tok))
    # the demo's own directory: it wrote the text and tokenizer, and a second demo continues the first
    summary = pretrain(config, out, resume=True, allow_config_change=True, progress=not args.no_progress)
    model_dir = Path(summary["model_dir"])
    from sesame.pipelines import pipeline

    loss = f"loss {summary['loss']:.2f}" if summary.get("loss") is not None else "already trained"
    show(f"after {summary['steps']} steps ({loss}):", pipeline("fill-mask", model_dir))
    held = summary.get("eval") or {}
    if "eval_accuracy" in held:
        print(f"held-out masked tokens: {held['eval_accuracy']:.1%} predicted exactly "
              f"(perplexity {held['eval_ppl']:.1f}; chance would be {1 / tok.vocab_size:.2%})")
    plots = plot_run(out)
    print(f"model: {model_dir}\nplots: {', '.join(map(str, plots))}")
    return 0
