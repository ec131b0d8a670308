"""Curves of a run from its metrics.jsonl, as PNG files in ``run/plots/``: loss,
perplexity and every accuracy-like metric, train and eval side by side. Uses
matplotlib's Agg canvas directly, so no display and no global backend switch."""
from __future__ import annotations

import math
from pathlib import Path

from sesame.errors import DataError
from sesame.train.metrics import METRICS, read_metrics


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records
           if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and "step" in r]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def _figure(title: str, curves: list[tuple[str, list[int], list[float]]], path: Path, log: bool = False) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, xs, ys in curves:
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
    if log and all(y > 0 for _, _, ys in curves for y in ys):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write loss.png, perplexity.png and one PNG per accuracy-like metric into run_dir/plots/;
    returns the files written."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir, strict=True)
    if not records:
        raise DataError(f"{run_dir / METRICS} is missing or empty; plot a run directory that has trained")
    train = [r for r in records if "event" not in r]
    evals = [r for r in records if r.get("event") == "eval"]
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def emit(name: str, title: str, curves, log: bool = False) -> None:
        curves = [c for c in curves if c[1]]
        if curves:
            _figure(title, curves, out / f"{name}.png", log)
            written.append(out / f"{name}.png")

    loss_train, loss_eval = _series(train, "loss"), _series(evals, "eval_loss")
    emit("loss", "loss", [("train", *loss_train), ("eval", *loss_eval)])
    ppl = lambda s: (s[0], [math.exp(min(v, 700.0)) for v in s[1]])  # noqa: E731
    emit("perplexity", "perplexity", [("train", *ppl(loss_train)), ("eval", *ppl(loss_eval))], log=True)
    names = sorted({k for r in train for k in r if "acc" in k} | {k[5:] for r in evals for k in r
                                                                 if k.startswith("eval_") and "acc" in k})
    for name in names:
        emit(name, name, [("train", *_series(train, name)), ("eval", *_series(evals, f"eval_{name}"))])
    return written
