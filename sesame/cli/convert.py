"""`sesame convert`: Hugging Face (or GGUF) <-> sesame model directories."""
from __future__ import annotations

from sesame.cli.common import add_overwrite_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert between Hugging Face / GGUF and sesame model directories",
        description="Convert weights, config and tokenizer files. Supported families: BERT, RoBERTa, "
                    "ALBERT, DistilBERT, ELECTRA, GPT-2, Llama, T5, BART.",
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--from-hf", action="store_true", help="SRC is a Hugging Face directory")
    group.add_argument("--to-hf", action="store_true", help="SRC is a sesame directory; write Hugging Face")
    group.add_argument("--from-gguf", action="store_true", help="SRC is a GGUF file (Llama-style)")
    p.add_argument("src", help="source directory (or .gguf file)")
    p.add_argument("out", help="output directory (written atomically)")
    p.add_argument("--allow-missing", action="store_true",
                   help="start parameters missing from the source fresh instead of failing")
    add_overwrite_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.models import hf
    from sesame.outputs import claim_output

    claim_output(args.out, args.overwrite, "output directory")
    if args.from_hf:
        report = hf.convert_from_hf(args.src, args.out, allow_missing=args.allow_missing)
        print(report)
    elif args.to_hf:
        hf.convert_to_hf(args.src, args.out)
    else:
        from sesame.models.gguf import convert_gguf  # names the `gguf` package if it is missing

        convert_gguf(args.src, args.out)
    print(f"wrote {args.out}")
    return 0
