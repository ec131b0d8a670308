"""`sesame tokenizer train | encode | info`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from sesame.cli.common import add_overwrite_arg
from sesame.errors import ConfigError
from sesame.outputs import claim_output, writing


def add_parser(sub) -> None:
    parser = sub.add_parser("tokenizer", help="train, inspect and apply tokenizers",
                            description="Train a vocabulary, encode text with offsets, or describe a tokenizer.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train", help="train a WordPiece/BPE/Unigram/char/trigram vocabulary",
        description="Train a vocabulary on text files, directories or globs (plain text, JSONL, TSV) and "
                    "save it as OUT/tokenizer.json.",
        epilog="example: sesame tokenizer train corpora/en/gutenberg --kind wordpiece --vocab-size 8000 --out tok/")
    train.add_argument("files", nargs="*", metavar="INPUT", help="text files, directories or glob patterns")
    train.add_argument("--out", required=True, help="directory (or .json file) to write tokenizer.json to")
    train.add_argument("--kind", choices=("wordpiece", "bpe", "unigram", "char", "trigram"),
                       help="wordpiece (BERT), bpe (GPT-2 byte-level), unigram (SentencePiece), char, "
                            "trigram (DSSM letter trigrams); default wordpiece")
    train.add_argument("--vocab-size", type=int, help="vocabulary size, special tokens included")
    train.add_argument("--min-frequency", type=int, help="drop pieces seen fewer times")
    train.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                       help="lowercase text (default: yes for wordpiece/char/trigram)")
    train.add_argument("--strip-accents", action=argparse.BooleanOptionalAction, default=None,
                       help="remove accents (default: when lowercasing)")
    train.add_argument("--unicode", choices=("none", "nfc", "nfd", "nfkc", "nfkd"),
                       help="Unicode normalisation form (default: nfkc for unigram, else none)")
    train.add_argument("--cjk-chars", action=argparse.BooleanOptionalAction, default=None,
                       help="every CJK character is its own word, as BERT-Chinese (default: yes)")
    train.add_argument("--special-tokens", nargs="+", metavar="TOKEN", help="special tokens, in id order")
    train.add_argument("--format", choices=("auto", "text", "jsonl", "tsv", "tagged", "conll"), default="auto",
                       help="input format (auto: by extension)")
    train.add_argument("--text-field", default="text", help="JSONL field holding the text")
    train.add_argument("--column", default="0", help="TSV column (index or header name)")
    _config_args(train, "tokenizer")
    add_overwrite_arg(train)
    train.set_defaults(run=run_train)

    enc = actions.add_parser("encode", help="encode text and show tokens, ids, offsets and word starts",
                             description="Encode text (arguments, or lines of standard input).",
                             epilog='example: sesame tokenizer encode --tokenizer tok/ "Hello world" "你好，世界"')
    enc.add_argument("texts", nargs="*", metavar="TEXT", help="texts to encode (default: read stdin)")
    enc.add_argument("--tokenizer", required=True,
                     help="tokenizer.json, vocab.txt, GPT-2 vocab, sentencepiece .model, or a directory")
    enc.add_argument("--merges", help="GPT-2 merges.txt (when not beside the vocabulary)")
    enc.add_argument("--segmenter", choices=("jieba", "none"), default="none",
                     help="Chinese word segmenter for word starts")
    enc.add_argument("--user-dict", help="jieba user dictionary")
    enc.add_argument("--special", action="store_true", help="add [CLS]/[SEP] (or <s>/</s>)")
    enc.add_argument("--json", action="store_true", help="print one JSON object per text")
    enc.set_defaults(run=run_encode)

    info = actions.add_parser("info", help="describe a tokenizer", description="Print kind, size and special tokens.")
    info.add_argument("tokenizer", help="tokenizer.json, vocab.txt, GPT-2 vocab, .model or a directory")
    info.add_argument("--merges", help="GPT-2 merges.txt")
    info.set_defaults(run=run_info)


def _config_args(parser: argparse.ArgumentParser, section: str) -> None:
    parser.add_argument("--config", help=f"a TOML config (its [{section}] section is used) or a preset name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override a config field, e.g. --set {section}.vocab_size=8000 (repeatable)")


def _column(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def run_train(args) -> int:
    from sesame.config import DataConfig, load_config
    from sesame.data.read import iter_texts
    from sesame.tokenize import train_tokenizer

    cfg = load_config(args.config, args.overrides).tokenizer
    flags = {"kind": args.kind, "vocab_size": args.vocab_size, "min_frequency": args.min_frequency,
             "lowercase": args.lowercase, "strip_accents": args.strip_accents, "unicode": args.unicode,
             "cjk_chars": args.cjk_chars, "special_tokens": args.special_tokens}
    changes = {k: v for k, v in flags.items() if v is not None}
    if "kind" in changes and args.special_tokens is None and cfg.special_tokens is None:
        changes["special_tokens"] = None
    cfg = cfg.replace(**changes) if changes else cfg
    files = args.files or cfg.files
    if not files:
        raise ConfigError("no training inputs: give files, directories or globs (or tokenizer.files in --config)")
    data_cfg = DataConfig(format=args.format, text_field=args.text_field, column=_column(args.column))
    data_cfg.validate()
    out = Path(args.out)
    target = out if out.suffix == ".json" else out / "tokenizer.json"
    claim_output(out, args.overwrite, "tokenizer output")
    t0 = time.time()
    stats: Counter = Counter()
    tok = train_tokenizer(config=cfg, texts=iter_texts(list(files), data_cfg, stats),
                          show_progress=sys.stderr.isatty())
    tmp = target.with_name(target.name + ".tmp")
    with writing(target, len(tok.to_json().encode()), cleanup=tmp):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(tok.to_json(), encoding="utf-8")
        os.replace(tmp, target)
    path = target
    roles = ", ".join(f"{r}={i}" for r, i in tok.special_ids.items())
    print(f"trained a {tok.kind} vocabulary of {tok.vocab_size} tokens in {time.time() - t0:.1f} s -> {path}")
    if stats["invalid_utf8_bytes"]:
        print(f"  note: {stats['invalid_utf8_bytes']:,} invalid UTF-8 bytes in the input were replaced by U+FFFD",
              file=sys.stderr)
    if tok.vocab_size < cfg.vocab_size:
        print(f"  note: the vocabulary came out at {tok.vocab_size} of the {cfg.vocab_size} tokens asked: the "
              "training text has too few distinct pieces (add text or lower --vocab-size)", file=sys.stderr)
    print(f"  special tokens: {roles}; lowercase: {tok.lowercase}; hash {tok.hash}")
    return 0


def _load(path: str, merges: str | None):
    from sesame.tokenize import load_tokenizer

    return load_tokenizer(path, merges=merges)


def run_encode(args) -> int:
    from sesame.tokenize import get_segmenter

    tok = _load(args.tokenizer, args.merges)
    seg = get_segmenter(args.segmenter, args.user_dict)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    for text in texts:
        enc = tok.encode(text, add_special_tokens=args.special, segmenter=seg)
        if args.json:
            print(json.dumps({"text": text, "ids": enc.ids, "tokens": enc.tokens,
                              "offsets": [list(o) for o in enc.offsets],
                              "word_starts": [int(w) for w in enc.word_starts]}, ensure_ascii=False))
            continue
        print(f"{text!r}: {len(enc)} tokens")
        print(f"  {'#':>4} {'id':>7}  {'token':<16} {'offsets':<11} word  text")
        for i, (tid, t, (s, e), w) in enumerate(zip(enc.ids, enc.tokens, enc.offsets, enc.word_starts)):
            print(f"  {i:>4} {tid:>7}  {t:<16} {f'{s}-{e}':<11} {'^' if w else ' ':<4}  {text[s:e]!r}")
    return 0


def run_info(args) -> int:
    tok = _load(args.tokenizer, args.merges)
    print(f"{tok.kind} tokenizer, {tok.vocab_size} tokens, lowercase={tok.lowercase}, hash {tok.hash}")
    for role, i in tok.special_ids.items():
        print(f"  {role:<5} {i:>7}  {tok.id_to_token(i)}")
    return 0
