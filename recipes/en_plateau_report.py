"""The English plateau's evidence in one table and one plot (issue 11): the held-out
MLM accuracy curves of every diagnostic run under docs/evidence/en-plateau/ (each a
``metrics.jsonl`` that ``sesame pretrain`` wrote, or the JSON of
``recipes/en_plateau_hf.py``) and of the recipe run copied to docs/evidence/bert-tiny-en/.

Run from the repository root:  python recipes/en_plateau_report.py
Writes docs/evidence/en-plateau/{summary.json,summary.md,curves.png}."""
from __future__ import annotations

import json
from pathlib import Path

EVIDENCE = Path("docs/evidence/en-plateau")
RUNS = {  # label -> metrics.jsonl, each with its config.toml beside it
    # old data (duplicated books; held-out = the Moby Dick tail, 79 % of its 8-grams seen in training)
    "old data: learned positions, lr 3e-3, 2,000 steps": EVIDENCE / "positions/learned.metrics.jsonl",
    "old data: symmetric ALiBi, lr 3e-3 (stopped at 1,000)": EVIDENCE / "positions/alibi.metrics.jsonl",
    "old data: rotary, lr 3e-3, 2,000 steps": EVIDENCE / "positions/rotary.metrics.jsonl",
    "old data: rotary + pre-norm, lr 3e-3, 2,000 steps": EVIDENCE / "positions/rotary-prenorm.metrics.jsonl",
    "old data: learned, fp32, lr 1e-3 (8,500-step schedule, stopped at 1,500)":
        EVIDENCE / "diagnostics/fp32-line-docs.metrics.jsonl",
    # each book once; held-out = the end of Northanger Abbey, seen nowhere in training
    "each book once: learned, book docs, lr 1e-3 (stopped at 1,500)":
        EVIDENCE / "diagnostics/fp32-book-docs-dedup.metrics.jsonl",
    "each book once: the recipe (rotary, lr 3e-3), 8,500 steps": Path("docs/evidence/bert-tiny-en/metrics.jsonl"),
}
HF = EVIDENCE / "hf-same-batches.json"


def curve(path: Path) -> list[tuple[int, float]]:
    points = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("event") == "eval":
            points[row["step"]] = row["eval_accuracy"]
    return sorted(points.items())


def main() -> None:
    curves = {label: curve(path) for label, path in RUNS.items() if path.exists()}
    if HF.exists():
        hf = json.loads(HF.read_text())
        for label, points in hf["curves"].items():
            curves[f"each book once, same batches: {label}"] = [
                (p["step"], p["eval_accuracy"]) for p in points if p["step"] > 1]
    steps = sorted({s for c in curves.values() for s, _ in c if s in (500, 1000, 1500, 2000, 4000, 8500)})
    lines = ["| run | " + " | ".join(f"{s:,}" for s in steps) + " |", "|---|" + "---:|" * len(steps)]
    for label, points in curves.items():
        at = dict(points)
        lines.append(f"| {label} | " + " | ".join(f"{100 * at[s]:.1f} %" if s in at else "—" for s in steps) + " |")
    table = "\n".join(lines)
    (EVIDENCE / "summary.json").write_text(json.dumps(
        {"command": "python recipes/en_plateau_report.py", "held_out_accuracy": curves}, indent=2) + "\n")
    (EVIDENCE / "summary.md").write_text(
        "Held-out MLM accuracy by step (`python recipes/en_plateau_report.py`; numbers in summary.json)\n\n"
        + table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, points in curves.items():
        ax.plot([s for s, _ in points], [100 * a for _, a in points], marker="o", ms=3, label=label)
    ax.set_xlabel("optimizer step (32 × 128 tokens)")
    ax.set_ylabel("held-out MLM accuracy (%)")
    ax.set_title("bert-tiny-en: learned positions stay on the plateau, rotary leaves it")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(EVIDENCE / "curves.png", dpi=120)
    print(table)


if __name__ == "__main__":
    main()
