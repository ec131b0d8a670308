"""`sesame eval MODEL_DIR`: score a model on held-out text (MLM/CLM) or a labeled set."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a model: LM loss/perplexity on text, or a downstream task on its data",
        description="With --text: masked-LM accuracy and perplexity (encoders) or causal-LM perplexity "
                    "(decoders) on held-out text, prepared with the model's tokenizer. With --dataset: "
                    "the downstream task's metrics on a labeled split (see `sesame finetune --help`).",
    )
    p.add_argument("model_dir", help="a sesame model directory (runs/NAME/model), a training checkpoint "
                   "(runs/NAME/checkpoints/step-N) or a Hugging Face directory")
    p.add_argument("--text", nargs="+", help="files, folders or globs of held-out text")
    p.add_argument("--seq-len", type=int, help="window length (default: the model's, at most 512)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--objective", choices=["mlm", "clm"], help="default: mlm for encoders, clm for decoders")
    p.add_argument("--dataset", help="a labeled data set name (sst2, conll2003, cmrc2018, ...)")
    p.add_argument("--split", default="dev", help="which split of --dataset (default: dev)")
    p.add_argument("--data-dir", help="where the labeled sets live (default: ../shared/data/labeled)")
    p.add_argument("--report", help="folder for the JSON/Markdown report")
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.errors import SesameError

    if bool(args.text) == bool(args.dataset):
        raise SesameError("give either --text FILES (language-model scores) or --dataset NAME (a task)")
    if args.text:
        from sesame.evaluate import evaluate_lm

        result = evaluate_lm(args.model_dir, args.text, args.seq_len, args.batch_size, objective=args.objective)
    else:
        from sesame.finetune import evaluate_dataset

        result = evaluate_dataset(args.model_dir, args.dataset, args.split, args.data_dir, args.batch_size,
                                  args.report)
    print(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=2, default=str))
    return 0
