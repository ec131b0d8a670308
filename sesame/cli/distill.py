"""`sesame distill TEACHER --student CONFIG_OR_DIR`: knowledge distillation (DistilBERT, TinyBERT)."""
from __future__ import annotations

import argparse

from sesame.cli.compress_args import add_common, print_eval, settings

SECTIONS = ("distill", "train", "task", "student", "data")
EPILOG = """methods (distill.method): kd (KL at temperature T, scaled T^2, + hard labels), distilbert (kd 5 +
hard 2 + cosine 1, student from every other teacher layer), tinybert-general (embedding, hidden and
attention-score MSE on corpus text), tinybert-task (the same + prediction-layer soft cross-entropy).
Set any weight with --set distill.kd=.. hard= pred= cos= embed= hidden= attention= relation= (MiniLM),
distill.temperature, distill.layer_map=[2,4,6], distill.init=every_other|random.

The student: a model directory (it must use the teacher's tokenizer), or a TOML file / preset whose
[model] table goes over the teacher's config; --set student.KEY=VALUE does the same (e.g.
--set student.layers=3). With --dataset the teacher must be fine-tuned on it (task-specific); with
--corpus the distillation is task-agnostic (TinyBERT's general stage; MLM logits when kd/hard are set).

examples:
  sesame distill runs/ft-sst2/model --dataset sst2 --student "" --set student.layers=3 --out runs/kd3
  sesame distill runs/ft-sst2/model --dataset sst2 --student "" --method distilbert --out runs/distil
  sesame distill runs/bert/model --corpus corpus.txt --student small.toml --method tinybert-general"""


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="distil a teacher into a smaller student (KD, DistilBERT, TinyBERT)",
                       description="Distil TEACHER (a sesame or Hugging Face model directory) into a student, on a "
                                   "labeled data set or on corpus text; the student goes to OUT/model.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", help="the teacher model directory")
    p.add_argument("--student", required=True, metavar="CONFIG_OR_DIR",
                   help="a model directory, a TOML file or preset with a [model] table, or '' (the teacher's "
                        "config with --set student.KEY=VALUE)")
    p.add_argument("--method", help="kd | distilbert | tinybert-general | tinybert-task (default kd)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a labeled data set the teacher is fine-tuned on (task-specific)")
    src.add_argument("--corpus", nargs="+", help="text files for task-agnostic distillation")
    add_common(p, SECTIONS)
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from sesame.compress.distill import DistillConfig, distill
    from sesame.compress.run import claim_out

    s = settings(args, SECTIONS)
    if args.method:
        s["distill"]["method"] = args.method
    cfg = DistillConfig.from_dict(s["distill"], "distill")
    out = claim_out(Path(args.out or Path("runs") / f"distill-{args.dataset or 'corpus'}"), args.overwrite)
    summary = distill(args.teacher, args.student, out, cfg, dataset=args.dataset, corpus=args.corpus,
                      data=s["data"], train=s["train"], options=s["task"], student_overrides=s["student"],
                      max_train=args.max_train, max_eval=args.max_eval, data_dir=args.data_dir,
                      progress=not args.no_progress)
    for note in summary.get("notes", []):
        print(note)
    size = summary["size"]
    print(f"student {size['student']['parameters']:,} parameters (teacher {size['teacher']['parameters']:,})")
    if "eval" in summary:
        print_eval("student", summary["eval"])
        print_eval("teacher", summary["teacher_eval"])
    print(f"model: {summary['model_dir']}; summary: {out / 'summary.json'}")
    return 0
