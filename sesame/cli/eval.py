"""`sesame eval MODEL_DIR`: score a model on held-out text (MLM/CLM), on a labeled file, on a
named set, or on the files it was fine-tuned on."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    from sesame.cli.finetune import add_file_options

    p = sub.add_parser(
        "eval", help="evaluate a model: LM loss/perplexity on text, or a downstream task on labeled data",
        description="With --text: masked-LM accuracy and perplexity (encoders) or causal-LM perplexity "
                    "(decoders) on held-out text, prepared with the model's tokenizer. With --data FILE: the "
                    "fine-tuned task's metrics on your labeled file (read like its training files; column "
                    "options override). With --dataset: a named set's split. With neither, on a fine-tuned "
                    "model: the --split of the files (or named set) it was fine-tuned on, as finetune.json "
                    "records them. A file without labels gets predictions only.",
    )
    p.add_argument("model_dir", help="a sesame model directory (runs/NAME/model), a training checkpoint "
                   "(runs/NAME/checkpoints/step-N) or a Hugging Face directory")
    p.add_argument("--text", nargs="+", help="files, folders or globs of held-out text")
    p.add_argument("--seq-len", type=int, help="window length (default: the model's, at most 512)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--doc-boundary", choices=["auto", "blank", "line", "file"], default="auto",
                   help="what ends a document in --text (file: each file is one document, so causal windows "
                        "reach across blank lines; default auto: blank lines when the file has them)")
    p.add_argument("--objective", choices=["mlm", "clm"], help="default: mlm for encoders, clm for decoders")
    p.add_argument("--data", metavar="FILE", help="a labeled file (CSV, TSV, JSONL, JSON, CoNLL, Parquet)")
    p.add_argument("--dataset", help="a named data set (sst2, conll2003, cmrc2018, ...)")
    p.add_argument("--split", default="dev", help="which split of --dataset or of the recorded files (default: dev)")
    p.add_argument("--data-dir", help="root of the named sets (default: $SESAME_DATA, else ../shared/data)")
    p.add_argument("--report", help="folder for the JSON/Markdown report and predictions")
    add_file_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.errors import SesameError

    if args.text and (args.dataset or args.data):
        raise SesameError("give --text FILES (language-model scores) or labeled data (--data / --dataset), not both")
    if args.dataset and args.data:
        raise SesameError("give --data FILE or --dataset NAME, not both")
    if args.text:
        from sesame.evaluate import evaluate_lm

        result = evaluate_lm(args.model_dir, args.text, args.seq_len, args.batch_size, objective=args.objective,
                             doc_boundary=args.doc_boundary)
    else:
        from sesame.cli.finetune import file_args
        from sesame.finetune import evaluate_dataset

        columns, data = file_args(args)
        result = evaluate_dataset(args.model_dir, args.dataset, args.split, args.data_dir, args.batch_size,
                                  args.report, data_file=args.data, task=args.task, columns=columns, data=data)
    print(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=2, default=str,
                     ensure_ascii=False))
    return 0
