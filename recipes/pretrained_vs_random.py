"""What pre-training is worth: fine-tune a pre-trained model and the same architecture
from random initialisation (``--transfer-layers none``: same tokenizer, same config,
fresh weights) on the same data with identical budgets and seeds, and print a Markdown
table of dev/test accuracy (mean and spread over seeds).

    python recipes/pretrained_vs_random.py runs/bert-tiny-en/model --dataset sst2 \\
        --seeds 0 1 2 --out runs/compare-sst2 [--set train.steps=1500 --set task.max_length=64]

Each run is an ordinary ``sesame finetune`` run directory under ``--out``; the table and
every number are also written to ``--out/results.json``."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def parse_sets(items: list[str]) -> tuple[dict, dict]:
    from sesame.config.run import parse_override

    train, task = {}, {}
    for item in items:
        path, value = parse_override(item)
        target = {"train": train, "task": task}.get(path[0])
        if target is None or len(path) != 2:
            raise SystemExit(f"--set takes train.KEY=VALUE or task.KEY=VALUE, got {item!r}")
        target[path[1]] = value
    return train, task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--dataset", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-train", type=int, help="fine-tune on a fixed-seed subset of N examples (few-shot)")
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args()

    from sesame.finetune import finetune

    train, task = parse_sets(args.sets)
    out = Path(args.out)
    results: dict[str, list[dict]] = {"pre-trained": [], "random init": []}
    for seed in args.seeds:
        for init, layers in (("pre-trained", "all"), ("random init", "none")):
            run = out / f"{'pretrained' if layers == 'all' else 'random'}-seed{seed}"
            summary = finetune(args.model_dir, args.dataset, run, {**train, "seed": seed}, task,
                               {"transfer_layers": layers}, max_train=args.max_train, progress=False,
                               say=lambda _: None)
            scores = {split: report["metrics"] for split, report in summary["eval"].items()}
            results[init].append({"seed": seed, "run": str(run), "scores": scores,
                                  "seconds": summary["train"].get("seconds")})
            print(f"{init:<12} seed {seed}: " + "  ".join(
                f"{split} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
                for split, m in scores.items()), flush=True)
    rows = ["| init | split | metric | mean | min | max | runs |", "|---|---|---|---:|---:|---:|---:|"]
    first = results["pre-trained"][0]["scores"]
    for init, runs in results.items():
        for split, metrics in first.items():
            for metric, value in metrics.items():
                if not isinstance(value, float):
                    continue
                values = [r["scores"][split][metric] for r in runs]
                rows.append(f"| {init} | {split} | {metric} | {statistics.mean(values):.4f} | {min(values):.4f} | "
                            f"{max(values):.4f} | {len(values)} |")
    table = "\n".join(rows)
    print(table)
    (out / "results.json").write_text(json.dumps({"dataset": args.dataset, "model_dir": args.model_dir,
                                                  "max_train": args.max_train,
                                                  "train": train, "task": task, "results": results,
                                                  "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
