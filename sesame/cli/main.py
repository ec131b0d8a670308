"""`sesame VERB ...`: one module per verb under ``sesame.cli``, each with
``add_parser(subparsers)`` and ``run(args) -> int``."""
from __future__ import annotations

import argparse
import importlib
import sys

from sesame.errors import SesameError

# (module, verb); a verb's module defines add_parser(sub) and run(args).
VERBS = [
    "demo",
    "summary",
    "convert",
    "tokenizer",
    "data",
    "pretrain",
    "finetune",
    "eval",
    "infer",
    "plot",
    "distill",
    "prune",
    "quantize",
    "static",
    "compare",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sesame",
        description="Build, pre-train, compress, fine-tune and apply Transformer language models.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERBS:
        module = importlib.import_module(f"sesame.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "texts", None), list) and not any(e.startswith("-") for e in extra):
        args.texts += extra  # inference verbs: texts may follow the options
    elif extra:
        parser.parse_args(argv)  # reports the unrecognised arguments
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except SesameError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sesame classify ... | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
