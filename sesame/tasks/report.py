"""Evaluation reports: ``{name}.json`` (everything but the predictions),
``{name}.md`` (tables of the scores x100), ``{name}-predictions.jsonl`` and, for
classification, ``{name}-confusion.png`` (matplotlib, Agg backend)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pct(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, float) else str(value)


def markdown(result: dict) -> str:
    """The result as Markdown: the headline metrics, then per-class/per-type scores."""
    lines = [f"# {result.get('task', 'evaluation')}", "", f"{result.get('examples', 0)} examples; scores x100.", ""]
    names = list(result.get("metrics", {}))
    lines += ["| " + " | ".join(names) + " |", "|" + "---:|" * len(names),
              "| " + " | ".join(_pct(result["metrics"][n]) for n in names) + " |", ""]
    for key, title in (("per_class", "class"), ("per_type", "type")):
        table = result.get(key)
        if not table:
            continue
        cols = list(next(iter(table.values())))
        lines += [f"| {title} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        lines += [f"| {name} | " + " | ".join(_pct(row[c]) for c in cols) + " |" for name, row in table.items()]
        lines.append("")
    if result.get("counts"):
        lines += ["| count | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in result["counts"].items()]
        lines.append("")
    return "\n".join(lines)


def confusion_png(matrix, labels, path: Path, title: str = "confusion matrix") -> Path:
    """A heat map of a (gold x predicted) count matrix, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix)
    n = len(labels)
    size = min(4 + 0.45 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    try:
        im = ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(n), labels=[str(label) for label in labels], rotation=60, ha="right")
        ax.set_yticks(range(n), labels=[str(label) for label in labels])
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title)
        if n <= 30:
            top = m.max() if m.size else 0
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, str(m[i, j]), ha="center", va="center",
                            color="white" if top and m[i, j] > top / 2 else "black", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def write_report(result: dict, out_dir, name: str) -> dict[str, str]:
    """Write the report files of ``result`` into ``out_dir``; returns {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / f"{name}.json", "markdown": out / f"{name}.md"}
    summary = {k: v for k, v in result.items() if k not in ("predictions", "files")}
    files["json"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files["markdown"].write_text(markdown(result) + "\n", encoding="utf-8")
    if result.get("predictions") is not None:
        files["predictions"] = out / f"{name}-predictions.jsonl"
        with files["predictions"].open("w", encoding="utf-8") as f:
            for row in result["predictions"]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if result.get("confusion") is not None and result.get("labels"):
        files["confusion"] = confusion_png(result["confusion"], result["labels"], out / f"{name}-confusion.png",
                                           f"{result.get('task', '')} confusion matrix")
    return {k: str(v) for k, v in files.items()}
