"""The report of a `sesame compare` study: ``results.json`` (every cell's numbers),
``results.md`` (one table per fine-tuning dataset: mean, standard deviation and range over
seeds) and ``results.png`` (the lead metric per arm, each seed a dot), with ``[[evaluate]]``
tables also their perplexities per window length and ``evaluate.png`` (perplexity against
window length per arm), in ``--out`` and in the study's ``evidence`` folder."""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from sesame.errors import DataError

FILES = ("results.json", "results.md", "results.png", "evaluate.png")


def _load(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and run the study again to redo that cell") \
            from None


def _lead(metrics: dict, wanted: str | None) -> str:
    if wanted:
        if wanted not in metrics:
            raise DataError(f"[[finetune]] metric = {wanted!r} is not among the fine-tune's metrics {sorted(metrics)}")
        return wanted
    return "f1" if "f1" in metrics else "accuracy" if "accuracy" in metrics else sorted(metrics)[0]


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def collect(study, out: Path) -> dict:
    from sesame.compare import RANDOM, finetune_dir, pretrain_dir

    plan = _load(out / "plan.json") or {}
    arms = {}
    for arm in study.arm:
        runs = []
        for seed in study.seeds:
            s = _load(pretrain_dir(out, arm.name, seed) / "summary.json")
            if s is not None:
                runs.append({"seed": seed, "steps": s.get("steps"), "seconds": s.get("seconds"),
                             "eval": s.get("eval")})
        p = plan.get(arm.name, {})
        arms[arm.name] = {"flops_per_step": p.get("flops_per_step"), "steps": p.get("steps"),
                          "flops": p.get("flops"), "pretrain": runs}
    tables = {}
    for spec in study.finetune:
        rows, lead = {}, spec.metric
        for name in [a.name for a in study.arm] + ([RANDOM] if spec.random_init else []):
            cells = []
            for seed in study.seeds:
                s = _load(finetune_dir(out, spec.name, name, seed) / "summary.json")
                if s is None:
                    continue
                scores = {split: r["metrics"] for split, r in s.get("eval", {}).items()}
                cells.append({"seed": seed, "scores": scores, "seconds": s.get("train", {}).get("seconds")})
            if cells:
                rows[name] = cells
        if rows:
            first = next(iter(rows.values()))[0]["scores"]
            lead = _lead(next(iter(first.values())), spec.metric)
        tables[spec.name] = {"dataset": spec.dataset, "metric": lead, "train": spec.train, "options": spec.options,
                                "max_train": spec.max_train, "rows": rows}
    from sesame.compare import evaluate_file

    evaluations = {}
    for spec in study.evaluate:
        rows = {}
        for arm in study.arm:
            cells = [{"seed": seed, "results": r["results"]} for seed in study.seeds
                     if (r := _load(evaluate_file(out, spec.name, arm.name, seed))) is not None]
            if cells:
                rows[arm.name] = cells
        evaluations[spec.name] = {"inputs": spec.inputs, "seq_len": spec.seq_len, "rows": rows}
    return {"study": study.name, "seeds": study.seeds, "budget": study.budget.to_dict(), "arms": arms,
            "finetune": tables, "evaluate": evaluations}


def markdown(results: dict, command: str) -> str:
    lines = [f"# Study `{results['study']}`", "", f"Made by `{command}`; every number is in `results.json`.", "",
             "## Pre-training", "",
             "| arm | steps | GFLOP / step | budget (PFLOP) | seconds (mean) | held-out accuracies at the end |",
             "|---|---:|---:|---:|---:|---|"]
    for name, a in results["arms"].items():
        secs = [r["seconds"] for r in a["pretrain"] if r.get("seconds") is not None]
        held = []
        for r in a["pretrain"]:
            ev = r.get("eval") or {}
            shown = ", ".join(f"{k[5:]} {100 * v:.1f} %" for k, v in ev.items()
                              if k.startswith("eval_") and k.endswith("accuracy") and isinstance(v, float))
            if "eval_accuracy" in ev:  # one token objective: its loss is comparable too (nats per target)
                shown += f", loss {ev['eval_loss']:.3f}"
            held.append(f"s{r['seed']}: {shown}" if shown else f"s{r['seed']}: —")
        fps, secs_shown = a["flops_per_step"], f"{statistics.mean(secs):,.0f}" if secs else "—"
        lines.append(f"| {name} | {a['steps'] or '—'} | {fps / 1e9:.4g} | {(a['flops'] or 0) / 1e15:.4g} | "
                     f"{secs_shown} | {'; '.join(held)} |" if fps else f"| {name} | — | — | — | — | — |")
    for dataset, t in results["finetune"].items():
        m = t["metric"]
        splits = sorted({sp for cells in t["rows"].values() for c in cells for sp in c["scores"]})
        how = f"fine-tune {json.dumps(t['train'])}, options {json.dumps(t['options'])}"
        heads = " | ".join(f"{sp} {m} (mean ± sd, min–max)" for sp in splits)
        lines += ["", f"## {dataset} ({m}; {how})", "", f"| pre-training | {heads} | seeds |",
                  "|---|" + "---:|" * len(splits) + "---:|"]
        for name, cells in t["rows"].items():
            parts = []
            for sp in splits:
                values = [c["scores"][sp][m] for c in cells if sp in c["scores"]]
                s = _stats(values) if values else None
                parts.append(f"{100 * s['mean']:.2f} ± {100 * s['sd']:.2f} ({100 * s['min']:.2f}–{100 * s['max']:.2f})"
                             if s else "—")
            lines.append(f"| {name} | " + " | ".join(parts) + f" | {len(cells)} |")
    for name, e in results.get("evaluate", {}).items():
        lines += ["", f"## {name}: held-out perplexity by window length (mean ± sd over seeds; "
                      f"{', '.join(e['inputs'])})", "",
                  "| arm | " + " | ".join(f"windows of {n}" for n in e["seq_len"]) + " | seeds |",
                  "|---|" + "---:|" * len(e["seq_len"]) + "---:|"]
        for arm, cells in e["rows"].items():
            parts = []
            for n in e["seq_len"]:
                values = [c["results"][str(n)]["perplexity"] for c in cells if str(n) in c["results"]]
                s = _stats(values) if values else None
                parts.append(f"{s['mean']:.2f} ± {s['sd']:.2f}" if s else "—")
            lines.append(f"| {arm} | " + " | ".join(parts) + f" | {len(cells)} |")
    return "\n".join(lines) + "\n"


def plot_evaluate(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {n: e for n, e in results.get("evaluate", {}).items() if e["rows"]}
    if not tables:
        return
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.8), squeeze=False)
    for ax, (name, e) in zip(axes[0], tables.items()):
        for arm, cells in e["rows"].items():
            xs = [n for n in e["seq_len"] if all(str(n) in c["results"] for c in cells)]
            means = [statistics.mean(c["results"][str(n)]["perplexity"] for c in cells) for n in xs]
            line, = ax.plot(xs, means, marker="o", label=arm)
            for c in cells:
                ax.scatter(xs, [c["results"][str(n)]["perplexity"] for n in xs], color=line.get_color(), s=8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("evaluation window (tokens)")
        ax.set_ylabel("held-out perplexity")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{results['study']}: mean over seeds (lines), each seed (dots)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {d: t for d, t in results["finetune"].items() if t["rows"]}
    if not tables:
        return
    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.8), squeeze=False)
    for ax, (dataset, t) in zip(axes[0], tables.items()):
        names = list(t["rows"])
        split = "test" if all("test" in c["scores"] for cells in t["rows"].values() for c in cells) else "dev"
        for i, name in enumerate(names):
            values = [100 * c["scores"][split][t["metric"]] for c in t["rows"][name]]
            ax.bar(i, statistics.mean(values), color="#9ab" if name != "random init" else "#ccc")
            ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{split} {t['metric']} (%)")
        low = min(100 * c["scores"][split][t["metric"]] for cells in t["rows"].values() for c in cells)
        ax.set_ylim(max(0.0, low - 5), None)
        ax.set_title(dataset)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{results['study']}: mean over seeds (bars), each seed (dots)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(study, out: Path, command: str | None = None) -> dict:
    command = command or f"sesame compare {study.source} --out {out}"
    results = {"command": command, **collect(study, out)}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (out / "results.md").write_text(markdown(results, command))
    plot(results, out / "results.png")
    plot_evaluate(results, out / "evaluate.png")
    if study.evidence:
        target = Path(study.evidence)
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (out / name).is_file():
                shutil.copyfile(out / name, target / name)
    return results
