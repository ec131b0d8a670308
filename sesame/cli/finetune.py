"""`sesame finetune MODEL_DIR --dataset NAME`: fine-tune on a labeled set with a transfer strategy."""
from __future__ import annotations

import argparse
import json

SECTIONS = ("train", "task", "strategy")


def _epilog() -> str:
    from sesame.finetune import DATASETS

    rows = [f"  {name:<13} {spec.task:<15} {spec.note}" for name, spec in DATASETS.items()]
    return "\n".join([
        "data sets (name, task, how the splits were chosen where the shared copy lacks one):", *rows, "",
        "strategies: full (default) | frozen (feature-based: heads and mix train) | adapters (bottleneck",
        "adapters + heads + norms train). Combine with --scalar-mix, --transfer-layers, --gradual-unfreeze,",
        "--layer-lr-decay. Defaults: 3 epochs, batch 32, 10% warmup, lr 5e-5 (hidden >= 512), 1e-4 (>= 256),",
        "5e-4 (smaller), 1e-3 for frozen/adapters. The run directory gets config.toml, metrics.jsonl,",
        "eval/ reports, summary.json and model/ (with tokenizer.json and labels.json).", "",
        "examples:",
        "  sesame finetune runs/bert/model --dataset sst2 --out runs/ft-sst2 --set train.steps=500",
        "  sesame finetune runs/bert/model --dataset conll2003 --out runs/ner --strategy adapters --adapter-size 32",
        "  sesame finetune runs/bert/model --dataset sst2 --out runs/elmo --strategy frozen --scalar-mix",
        "  sesame finetune runs/bert/model --dataset mrpc --then sst2 --out runs/two-stage",
        "  sesame finetune runs/bert/model --dataset sst2 --also cola mrpc --out runs/mtl",
    ])


def add_parser(sub) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a model on a labeled data set (full, frozen, adapters, multi-task, ...)",
        description="Fine-tune MODEL_DIR (a sesame model directory or a Hugging Face one) on a named\n"
                    "labeled data set, evaluate it on dev (and test when there is one), and save the\n"
                    "fine-tuned model to OUT/model, ready for `sesame eval --dataset` and sesame.pipeline.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", help="the pre-trained model: runs/NAME/model, a training checkpoint "
                   "(runs/NAME/checkpoints/step-N) or a Hugging Face folder")
    p.add_argument("--dataset", required=True, help="data set to fine-tune on (see the list below)")
    p.add_argument("--out", help="run directory (default: runs/ft-<dataset>)")
    p.add_argument("--config", help="a TOML file with [train], [task] and [strategy] sections")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a train, task or strategy setting, e.g. --set train.steps=500 "
                        "--set task.max_length=64 (repeatable)")
    g = p.add_argument_group("transfer strategy")
    g.add_argument("--strategy", choices=["full", "frozen", "adapters"],
                   help="what trains: everything (full), only the heads (frozen), adapters + heads (adapters)")
    g.add_argument("--adapter-size", type=int, help="bottleneck width of the adapters (default 64)")
    g.add_argument("--scalar-mix", action="store_true", help="heads read an ELMo-style learned mix of all layers")
    g.add_argument("--transfer-layers", choices=["all", "embeddings", "top", "none"],
                   help="which pre-trained layers transfer: all (default), embeddings only (blocks re-initialised), "
                        "top (the task reads the top layer only), none (random init of the same architecture: "
                        "the baseline that shows what pre-training is worth)")
    g.add_argument("--gradual-unfreeze", action="store_true",
                   help="unfreeze one layer group per epoch, top to bottom (ULMFiT)")
    g.add_argument("--layer-lr-decay", type=float,
                   help="discriminative learning rates: block l of L learns at lr * decay^(L-l) (e.g. 0.9)")
    d = p.add_argument_group("data and runs")
    d.add_argument("--max-train", type=int, help="train on at most N examples (a fixed-seed subset)")
    d.add_argument("--max-eval", type=int, help="evaluate on at most N examples per split")
    d.add_argument("--eval-split", default="dev", help="split evaluated during and after training (default dev)")
    d.add_argument("--data-dir", help="where the labeled sets live (default: ../shared/data/labeled)")
    d.add_argument("--then", metavar="DATASET",
                   help="two-stage: fully fine-tune on --dataset first (the intermediate task), then on DATASET "
                        "with the chosen strategy")
    d.add_argument("--also", nargs="+", metavar="DATASET",
                   help="multi-task: train --dataset and these together, one shared encoder, one head each")
    d.add_argument("--mix", choices=["proportional", "round_robin"], default="proportional",
                   help="multi-task batch schedule (default: tasks drawn in proportion to their sizes)")
    d.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def settings(args) -> dict[str, dict]:
    """{train, task, strategy} from --config, then --set, then the strategy flags."""
    from sesame.config.base import closest
    from sesame.config.run import load_dict, parse_override
    from sesame.errors import ConfigError

    data = load_dict(args.config) if args.config else {}
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"unknown section [{key}]{closest(key, SECTIONS)} in {args.config}; "
                              f"fine-tuning reads {', '.join(SECTIONS)}")
    out = {s: dict(data.get(s) or {}) for s in SECTIONS}
    for text in args.overrides:
        path, value = parse_override(text)
        if path[0] not in SECTIONS or len(path) != 2:
            raise ConfigError(f"--set {text!r}: fine-tuning takes train.KEY, task.KEY or strategy.KEY"
                              f"{closest(path[0], SECTIONS)}")
        out[path[0]][path[1]] = value
    flags = {"kind": args.strategy, "adapter_size": args.adapter_size, "transfer_layers": args.transfer_layers,
             "layer_lr_decay": args.layer_lr_decay, "scalar_mix": args.scalar_mix or None,
             "gradual_unfreeze": args.gradual_unfreeze or None}
    out["strategy"].update({k: v for k, v in flags.items() if v is not None})
    return out


def run(args) -> int:
    from pathlib import Path

    from sesame import finetune as ft
    from sesame.errors import ConfigError
    from sesame.outputs import claim_run_dir
    from sesame.transfer import StrategyConfig

    if args.then and args.also:
        raise ConfigError("give --then (two-stage) or --also (multi-task), not both")
    s = settings(args)
    strategy = StrategyConfig.from_dict(s["strategy"])
    out = claim_run_dir(Path(args.out or Path("runs") / f"ft-{args.dataset}"), args.resume)
    common = dict(progress=not args.no_progress, data_dir=args.data_dir, max_eval=args.max_eval, resume=args.resume)
    if args.also:
        summary = ft.multitask(args.model_dir, [args.dataset, *args.also], out, s["train"], strategy,
                               args.max_train, args.mix, options={n: s["task"] for n in [args.dataset, *args.also]},
                               **common)
        results = {name: t["eval"] for name, t in summary["tasks"].items()}
    elif args.then:
        summary = ft.two_stage(args.model_dir, args.dataset, args.then, out, s["train"], strategy,
                               options=s["task"], max_train=args.max_train, eval_split=args.eval_split, **common)
        results = {f"stage1 {args.dataset}": summary["stage1"]["eval"],
                   f"stage2 {args.then}": summary["stage2"]["eval"]}
    else:
        summary = ft.finetune(args.model_dir, args.dataset, out, s["train"], s["task"], strategy, args.max_train,
                              args.eval_split, **common)
        results = {args.dataset: summary["eval"]}
    t = summary.get("trainable") or summary["stage2"]["trainable"]
    print(f"trainable parameters: {t['trainable']:,} of {t['total']:,} ({t['fraction']:.2%})")
    for name, splits in results.items():
        for split, r in splits.items():
            print(f"{name} {split} ({r['examples']} examples): {json.dumps(r['metrics'])}")
    print(f"model: {summary.get('model_dir') or out / 'models'}; summary: {out / 'summary.json'}")
    return 0
