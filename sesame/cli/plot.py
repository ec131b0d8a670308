"""`sesame plot RUN_DIR`: loss, perplexity and accuracy curves of a run, as PNG files."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw a run's loss, perplexity and accuracy curves",
                       description="Read RUN_DIR/metrics.jsonl and write loss, perplexity and accuracy "
                                   "curves as PNG files into RUN_DIR/plots/.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory (holds metrics.jsonl)")
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.train.plot import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0
