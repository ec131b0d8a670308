"""`sesame data prepare | info`."""
from __future__ import annotations

import argparse
import json

from sesame.errors import ConfigError
from sesame.outputs import writing


def add_parser(sub) -> None:
    parser = sub.add_parser("data", help="prepare and inspect corpus shards",
                            description="Turn raw text into tokenized shards, or describe prepared shards.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    prep = actions.add_parser(
        "prepare", help="raw text -> shards with word, sentence and entity records",
        description="Tokenize text files, directories or globs (plain text, JSONL, TSV, word/tag, CoNLL) into "
                    "memory-mapped shards. Running the same command again resumes an interrupted run.",
        epilog="example: sesame data prepare corpora/en --tokenizer tok/ --out shards/en --workers 2")
    prep.add_argument("inputs", nargs="*", metavar="INPUT", help="text files, directories or glob patterns")
    prep.add_argument("--tokenizer", help="tokenizer.json, vocab.txt, GPT-2 vocab, .model or a directory")
    prep.add_argument("--out", help="output directory")
    prep.add_argument("--workers", type=int, help="worker processes (default 1)")
    prep.add_argument("--format", choices=("auto", "text", "jsonl", "tsv", "tagged", "conll"),
                      help="input format (auto: .jsonl, .tsv by extension, else plain text)")
    prep.add_argument("--text-field", help="JSONL field holding the text (default 'text')")
    prep.add_argument("--column", help="TSV column: an index, or a header name")
    prep.add_argument("--ext", nargs="+", metavar="SUFFIX", help="file suffixes taken from directories")
    prep.add_argument("--doc-boundary", choices=("auto", "blank", "line", "file"),
                      help="blank line, one per line, or one per file (auto: blank if the file has blank lines)")
    prep.add_argument("--sentences", choices=("rules", "line", "none"), help="sentence splitting (default rules)")
    prep.add_argument("--segmenter", choices=("auto", "jieba", "gold", "none"),
                      help="Chinese word boundaries (auto: gold words of tagged input, else jieba)")
    prep.add_argument("--user-dict", help="jieba user dictionary")
    prep.add_argument("--entities", metavar="LEXICON", help="phrase lexicon (phrase[<TAB>type] lines) for entity spans")
    prep.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=None,
                      help="remove exact duplicate documents (they are always counted)")
    prep.add_argument("--seq-len", type=int, help="training window, for the long-document report")
    prep.add_argument("--shard-mb", type=float, help="input megabytes per shard at most (default 64)")
    prep.add_argument("--overwrite", action="store_true", help="replace a different earlier preparation in --out")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")
    prep.add_argument("--json", action="store_true", help="print meta.json instead of the summary")
    prep.add_argument("--config", help="a TOML config (its [data] section is used) or a preset name")
    prep.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override a config field, e.g. --set data.dedup=true (repeatable)")
    prep.set_defaults(run=run_prepare)

    info = actions.add_parser("info", help="summarise a prepared corpus, or show one document",
                              description="Print the preparation summary; with --doc, a document's tokens.")
    info.add_argument("corpus", help="a prepared corpus directory")
    info.add_argument("--doc", type=int, help="show document N: tokens, word starts (|) and [entities]")
    info.set_defaults(run=run_info)


def run_prepare(args) -> int:
    from sesame.config import load_config
    from sesame.data import prepare
    from sesame.data.report import summary_text

    cfg = load_config(args.config, args.overrides).data
    column = None if args.column is None else (int(args.column) if args.column.isdigit() else args.column)
    flags = {"workers": args.workers, "format": args.format, "text_field": args.text_field, "column": column,
             "extensions": args.ext, "doc_boundary": args.doc_boundary, "sentences": args.sentences,
             "segmenter": args.segmenter, "user_dict": args.user_dict, "entities": args.entities,
             "dedup": args.dedup, "seq_len": args.seq_len, "shard_mb": args.shard_mb,
             "tokenizer": args.tokenizer, "out": args.out}
    changes = {k: v for k, v in flags.items() if v is not None}
    if args.inputs:
        changes["inputs"] = list(args.inputs)
    cfg = cfg.replace(**changes) if changes else cfg
    if not cfg.inputs:
        raise ConfigError("no inputs: give text files, directories or globs (or data.inputs in --config)")
    with writing(cfg.out or "--out"):  # a full disk or a refused permission: one error line, resumable
        meta = prepare(config=cfg, progress=not args.no_progress, overwrite=args.overwrite)
    print(json.dumps(meta, indent=1, ensure_ascii=False) if args.json else summary_text(meta, cfg.out))
    return 0


def run_info(args) -> int:
    from sesame.data import Corpus
    from sesame.data.report import summary_text

    corpus = Corpus(args.corpus)
    if args.doc is None:
        print(summary_text(corpus.meta, corpus.path))
        return 0
    doc = corpus.doc(args.doc)
    tok = corpus.tokenizer()
    tokens = tok.convert_ids_to_tokens(doc["ids"].tolist())
    opens = {int(s): corpus.entity_types[int(t)] for s, _, t in doc["entities"]}
    closes = {int(e) for _, e, _ in doc["entities"]}
    sent_starts = {int(s) for s in doc["sentences"][:, 0]}
    parts = []
    for i, t in enumerate(tokens):
        if i in closes:
            parts.append("]")
        if i in sent_starts and i:
            parts.append("\n")
        if doc["word_starts"][i]:
            parts.append("|")
        if i in opens:
            parts.append(f"[{opens[i]}:")
        parts.append(t + " ")
    if len(tokens) in closes:
        parts.append("]")
    print(f"document {args.doc}: {len(tokens)} tokens, {len(doc['sentences'])} sentences, "
          f"{len(doc['entities'])} entity spans")
    print("".join(parts))
    return 0
