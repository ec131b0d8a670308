"""Inference verbs, one per pipeline: fill-mask, generate, classify, tag, answer, embed,
translate. Each takes a model directory (sesame or Hugging Face), texts on the command line
or a file of inputs (``--input``: one text per line, or a CSV/TSV/JSONL/JSON table read with
the column options), and prints results or writes them as JSONL/CSV (``--output``), in
batches with a progress bar. Labels print as names."""
from __future__ import annotations

import csv
import json
import sys

VERBS = {
    "fill-mask": ("fill-mask", "predict the tokens behind [MASK] (or <mask>)"),
    "generate": ("text-generation", "continue prompts (greedy, sampling or beam search)"),
    "classify": ("text-classification", "classify texts (or text pairs joined with --pair)"),
    "tag": ("token-classification", "find entities in texts with a tagging model"),
    "answer": ("question-answering", "extract the answer to a question from a context"),
    "embed": ("feature-extraction", "sentence vectors (mean or CLS pooling), printed as JSON"),
    "translate": ("translation", "translate with an encoder-decoder model or a UniLM-style encoder (prefix LM)"),
}

WINDOW_POOL = {"embed": "vectors averaged", "classify": "probabilities averaged"}


def add_parser(sub) -> None:
    for verb, (task, text) in VERBS.items():
        p = sub.add_parser(verb, help=text, description=f"{text[0].upper()}{text[1:]}. MODEL_DIR is a sesame "
                           "model directory (e.g. runs/NAME/model) or a Hugging Face directory. An input longer "
                           "than the model takes is cut by --truncation (default head, the same for every verb "
                           "and for fine-tuning) and counted on stderr.")
        p.add_argument("model_dir")
        p.add_argument("--weights", choices=["fp32", "bf16", "int8"], default="fp32",
                       help="weight format for inference: fp32 (as saved), bf16, or int8 weight-only "
                            "(generation on a CPU is about 2x / 4x faster; numbers shift slightly)")
        p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                       help="where to run (auto: CUDA when there is one; default cpu)")
        p.add_argument("--input", metavar="FILE", help="read inputs from FILE: .txt one per line, or a CSV / TSV / "
                       "JSONL / JSON table (--text-column, --text-pair-column, --question-column, "
                       "--context-column pick the fields); empty inputs are skipped and counted")
        p.add_argument("--output", metavar="FILE", help="write results to FILE.jsonl or FILE.csv instead of stdout")
        p.add_argument("--batch-size", type=int, default=32, help="inputs per batch (default 32)")
        p.add_argument("--text-column", help="--input table: the text column (default: text, sentence, ...)")
        p.add_argument("--no-progress", action="store_true")
        if verb == "answer":
            p.add_argument("--question")
            p.add_argument("--context")
            p.add_argument("--question-column")
            p.add_argument("--context-column")
        else:
            p.add_argument("texts", nargs="*", help="input texts (or --input FILE)")
        if verb in ("classify", "embed"):
            p.add_argument("--truncation", choices=["head", "tail", "head+tail", "window"], default="head",
                           help="long inputs keep their head (default), tail, or both (a quarter head, the rest "
                                "tail); window: read every window of max-length tokens, overlapping by half, and "
                                + ("average the windows' vectors, weighted by their tokens" if verb == "embed" else
                                   "average the windows' class probabilities (a pair's second text is kept, cut "
                                   "to half the room when the pair is long)"))
        if verb == "fill-mask":
            p.add_argument("--top-k", type=int, default=5)
        if verb == "classify":
            p.add_argument("--pair", action="store_true", help="treat the texts as (a, b) pairs: a1 b1 a2 b2 ...")
            p.add_argument("--text-pair-column", help="--input table: the second text of a pair")
        if verb == "embed":
            p.add_argument("--pooling", choices=["mean", "cls"], default="mean")
            p.add_argument("--normalize", action="store_true")
            p.add_argument("--tokens", action="store_true",
                           help="one contextual vector per token instead of a sentence vector")
        if verb == "generate":
            p.add_argument("--max-new-tokens", type=int, default=32)
            p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
            p.add_argument("--temperature", type=float, default=1.0)
            p.add_argument("--top-k", type=int, default=0)
            p.add_argument("--top-p", type=float, default=1.0)
            p.add_argument("--num-beams", type=int, default=4)
            p.add_argument("--repetition-penalty", type=float, default=1.0)
            p.add_argument("--seed", type=int)
            p.add_argument("--mem-len", type=int, default=0,
                           help="Transformer-XL models: recurrence memory length (0: the model's mem_len)")
        p.set_defaults(run=run, pipeline_task=task, verb_name=verb)


def _inputs(args) -> tuple[list, int]:
    """The inputs (texts, (a, b) pairs, or {question, context}) and how many empty ones were skipped."""
    from pathlib import Path

    from sesame.errors import SesameError

    verb = args.verb_name
    if args.input is None:
        if verb == "answer":
            if not args.question or not args.context:
                raise SesameError("answer needs --question and --context, or --input FILE")
            return [{"question": args.question, "context": args.context}], 0
        if not args.texts:
            raise SesameError(f"{verb}: give texts on the command line or --input FILE")
        texts = list(args.texts)
        if getattr(args, "pair", False):
            if len(texts) % 2:
                raise SesameError("--pair needs an even number of texts (a1 b1 a2 b2 ...)")
            texts = list(zip(texts[::2], texts[1::2]))
        return texts, 0
    if verb != "answer" and args.texts:
        raise SesameError(f"{verb}: give texts or --input FILE, not both")
    path = Path(args.input)
    if path.suffix.lower() in (".txt", "") and verb != "answer":
        from sesame.tasks.tables import decode

        text, _ = decode(path)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        kept = [line for line in lines if line.strip()]
        if not lines:
            raise SesameError(f"{path}: the file is empty")
        return kept, len(lines) - len(kept)
    from sesame.tasks.files import _Row, as_spec
    from sesame.tasks.tables import detect_format, read_table

    table = read_table(path, detect_format(path))
    if verb == "answer":
        spec = as_spec(task="qa", columns={"question": args.question_column, "context": args.context_column})
        row = _Row(table, spec)
        q, c = row.index("question"), row.index("context")
        items = [{"question": str(v[q] or "").strip(), "context": str(v[c] or "").strip()} for _, v in table.rows]
        kept = [it for it in items if it["question"] and it["context"]]
        return kept, len(items) - len(kept)
    pair = getattr(args, "text_pair_column", None) or (getattr(args, "pair", False) or None)
    spec = as_spec(task="classification", columns={"text": args.text_column,
                                                    "text_pair": getattr(args, "text_pair_column", None)})
    row = _Row(table, spec)
    t = row.index("text")
    p = row.index("text_pair", required=bool(pair)) if verb == "classify" else None
    out, skipped = [], 0
    for _, values in table.rows:
        a = str(values[t] if values[t] is not None else "").strip()
        b = str(values[p] if values[p] is not None else "").strip() if p is not None and p != t else None
        if not a or (b is not None and not b):
            skipped += 1
            continue
        out.append((a, b) if b is not None else a)
    return out, skipped


def _rows(verb, pipe, batch, args) -> list[dict]:
    if verb == "fill-mask":
        out = pipe(batch, top_k=args.top_k)
        return [{"text": t, "fills": r} for t, r in zip(batch, out)]
    if verb == "generate":
        out = pipe(batch, max_new_tokens=args.max_new_tokens, strategy=args.strategy, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, num_beams=args.num_beams,
                   repetition_penalty=args.repetition_penalty, seed=args.seed, mem_len=args.mem_len)
        return [{"text": t, "generated": g} for t, g in zip(batch, out)]
    if verb == "classify":
        return [{"text": t if isinstance(t, str) else list(t), "label": best[0]["label"],
                 "score": round(best[0]["score"], 6)} for t, best in zip(batch, pipe(batch))]
    if verb == "tag":
        return [{"text": t, "entities": e} for t, e in zip(batch, pipe(batch))]
    if verb == "embed" and args.tokens:
        return [{"text": t, "tokens": [{"token": tok, "vector": [round(v, 6) for v in vec.tolist()]}
                                       for tok, vec in row]} for t, row in zip(batch, pipe.token_vectors(batch))]
    if verb == "embed":
        vectors = pipe(batch, pooling=args.pooling, normalize=args.normalize)
        return [{"text": t, "vector": [round(v, 6) for v in vec]} for t, vec in zip(batch, vectors.tolist())]
    if verb == "answer":
        return [{**it, "answer": a} for it, a in zip(batch, pipe(batch))]
    return [{"text": t, "translation": o} for t, o in zip(batch, pipe(batch))]


def _print(verb, row) -> None:
    if verb == "fill-mask":
        fills = row["fills"] if row["fills"] and isinstance(row["fills"][0], list) else [row["fills"]]
        for guesses in fills:
            print(f"{row['text']}\t" + ", ".join(f"{g['token']} ({g['score']:.3f})" for g in guesses))
    elif verb == "generate":
        print(f"{row['text']}{row['generated']}")
    elif verb == "classify":
        print(f"{row['label']}\t{row['score']:.3f}\t{row['text']}")
    elif verb == "answer":
        print(row["answer"])
    elif verb == "translate":
        print(f"{row['text']}\t{row['translation']}")
    else:
        print(json.dumps(row, ensure_ascii=False))


class _Writer:
    """Results to stdout, or to a .jsonl / .csv file (written whole, then renamed)."""

    def __init__(self, verb: str, output: str | None):
        from pathlib import Path

        from sesame.errors import SesameError

        self.verb, self.path, self.rows = verb, Path(output) if output else None, []
        if self.path is not None and self.path.suffix.lower() not in (".jsonl", ".csv"):
            raise SesameError(f"--output {output}: write .jsonl or .csv")

    def add(self, rows: list[dict]) -> None:
        if self.path is None:
            for row in rows:
                _print(self.verb, row)
        else:
            self.rows += rows

    def close(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            if self.path.suffix.lower() == ".jsonl":
                for row in self.rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                keys = list(dict.fromkeys(k for r in self.rows for k in r))
                w = csv.DictWriter(f, keys)
                w.writeheader()
                for row in self.rows:
                    w.writerow({k: v if isinstance(v, (str, int, float)) else json.dumps(v, ensure_ascii=False)
                                for k, v in row.items()})
        tmp.replace(self.path)
        print(f"{len(self.rows)} results -> {self.path}", file=sys.stderr)


def run(args) -> int:
    from sesame.errors import SesameError
    from sesame.pipelines import check_texts, pipeline

    if args.batch_size < 1:
        raise SesameError(f"--batch-size must be at least 1, got {args.batch_size}")
    verb = args.verb_name
    if verb == "fill-mask" and args.top_k < 1:
        raise SesameError(f"--top-k must be at least 1, got {args.top_k}")
    if verb == "generate":
        if args.strategy == "beam" and args.num_beams < 1:
            raise SesameError(f"--num-beams must be at least 1 for beam search, got {args.num_beams}")
        if args.max_new_tokens < 1:
            raise SesameError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    inputs, skipped = _inputs(args)
    if args.input is None and verb != "answer":
        check_texts([x for t in inputs for x in (t if isinstance(t, tuple) else [t])], verb)
    if not inputs:
        raise SesameError(f"{args.input}: no non-empty inputs ({skipped} empty skipped)")
    pipe = pipeline(args.pipeline_task, args.model_dir, args.weights, args.device,
                    getattr(args, "truncation", "head"))
    writer = _Writer(verb, args.output)
    from tqdm import tqdm

    bar = tqdm(total=len(inputs), unit="input", disable=args.no_progress or len(inputs) <= args.batch_size,
               file=sys.stderr)
    for i in range(0, len(inputs), args.batch_size):
        batch = inputs[i:i + args.batch_size]
        writer.add(_rows(verb, pipe, batch, args))
        bar.update(len(batch))
    bar.close()
    writer.close()
    if skipped:
        print(f"note: {skipped} empty input(s) in {args.input} skipped", file=sys.stderr)
    if getattr(pipe, "truncated", 0):
        how = getattr(args, "truncation", "head")
        done = f"read in windows overlapping by half, {WINDOW_POOL[verb]}" if how == "window" else f"truncated ({how})"
        print(f"note: {pipe.truncated} of {len(inputs)} input(s) were longer than {pipe.max_length} tokens: {done}",
              file=sys.stderr)
    return 0
