"""`sesame compare STUDY.toml --out DIR`: a fair comparison of pre-training setups."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="pre-train several setups at one FLOP budget, fine-tune each, report a table",
        description="Run (or continue) the study STUDY.toml describes (see sesame/compare.py): one shared "
                    "tokenizer and corpus, every [[arm]] pre-trained for each seed with the same training-FLOP "
                    "budget, each result fine-tuned on every [[finetune]] dataset with identical budgets and "
                    "seeds, then results.json, results.md and results.png in --out (and the study's evidence "
                    "folder). Finished cells are reused; --arms/--seeds let two processes share the work.",
    )
    p.add_argument("study", help="a study TOML file")
    p.add_argument("--out", required=True, help="study directory (cells, shared corpus, report)")
    p.add_argument("--arms", help="comma-separated arm names to run (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: the study's)")
    p.add_argument("--stage", choices=("all", "prepare", "plan", "pretrain", "finetune", "evaluate", "report"),
                   default="all", help="run one stage only (default: all, in order); plan: measure each arm's FLOPs "
                   "per step and print its steps, training nothing; evaluate: each [[evaluate]] table's held-out "
                   "loss at each window length")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.compare import STAGES, load_study, run_study

    study = load_study(args.study)
    stages = STAGES if args.stage == "all" else (args.stage,)
    arms = [a.strip() for a in args.arms.split(",")] if args.arms else None
    command = f"sesame compare {args.study} --out {args.out}"
    results = run_study(study, args.out, arms=arms, seeds=args.seeds, stages=stages,
                        progress=not args.no_progress, command=command)
    if results:
        print(f"report: {args.out}/results.md, results.json, results.png")
    return 0
