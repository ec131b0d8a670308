"""`sesame pretrain CONFIG`: pre-train from text to a model directory."""
from __future__ import annotations

from pathlib import Path

from sesame.cli.common import add_config_args, add_overwrite_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pre-train a model (tokenizer, corpus shards, objective, trainer)",
        description="Pre-train the model CONFIG describes on data.inputs (or a prepared data.corpus). "
                    "The run directory gets config.toml, tokenizer.json, corpus/, checkpoints/, "
                    "metrics.jsonl, plots/ and finally model/.",
    )
    add_config_args(p)
    p.add_argument("--out", help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--allow-config-change", action="store_true",
                   help="on --resume, apply changed optimisation settings (lr, steps, warmup, ...) from the "
                        "checkpoint's step on; recorded in state.json and config.toml")
    add_overwrite_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.config import load_config
    from sesame.pretrain import pretrain
    from sesame.train.plot import plot_run

    config = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    summary = pretrain(config, out, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite,
                       allow_config_change=args.allow_config_change)
    if summary.get("finished") and args.resume:
        print(f"already finished at step {summary['steps']}; model in {summary['model_dir']}")
        return 0
    plots = plot_run(out)
    loss = f"{summary['loss']:.4f}" if summary.get("loss") is not None else "n/a"
    print(f"done: {summary['steps']} steps, final loss {loss}, "
          f"{summary['tokens_per_s']:,.0f} tokens/s; model in {summary['model_dir']}")
    if summary.get("eval"):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in summary["eval"].items() if isinstance(v, float))
        print(f"held-out: {shown}")
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}")
    return 0
