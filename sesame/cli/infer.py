"""Inference verbs, one per pipeline: fill-mask, generate, classify, tag,
answer, embed, translate. Each takes a model directory (sesame or Hugging Face)."""
from __future__ import annotations

import json

VERBS = {
    "fill-mask": ("fill-mask", "predict the tokens behind [MASK] (or <mask>)"),
    "generate": ("text-generation", "continue prompts (greedy, sampling or beam search)"),
    "classify": ("text-classification", "classify texts (or text pairs joined with --pair)"),
    "tag": ("token-classification", "find entities in texts with a tagging model"),
    "answer": ("question-answering", "extract the answer to a question from a context"),
    "embed": ("feature-extraction", "sentence vectors (mean or CLS pooling), printed as JSON"),
    "translate": ("translation", "translate with an encoder-decoder model"),
}


def add_parser(sub) -> None:
    for verb, (task, text) in VERBS.items():
        p = sub.add_parser(verb, help=text, description=f"{text[0].upper()}{text[1:]}. MODEL_DIR is a sesame "
                           "model directory (e.g. runs/NAME/model) or a Hugging Face directory.")
        p.add_argument("model_dir")
        p.add_argument("--weights", choices=["fp32", "bf16", "int8"], default="fp32",
                       help="weight format for inference: fp32 (as saved), bf16, or int8 weight-only "
                            "(generation on a CPU is about 2x / 4x faster; numbers shift slightly)")
        if verb == "answer":
            p.add_argument("--question", required=True)
            p.add_argument("--context", required=True)
        else:
            p.add_argument("texts", nargs="+", help="input texts")
        if verb == "fill-mask":
            p.add_argument("--top-k", type=int, default=5)
        if verb == "classify":
            p.add_argument("--pair", action="store_true", help="treat the texts as (a, b) pairs: a1 b1 a2 b2 ...")
        if verb == "embed":
            p.add_argument("--pooling", choices=["mean", "cls"], default="mean")
            p.add_argument("--normalize", action="store_true")
        if verb == "generate":
            p.add_argument("--max-new-tokens", type=int, default=32)
            p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
            p.add_argument("--temperature", type=float, default=1.0)
            p.add_argument("--top-k", type=int, default=0)
            p.add_argument("--top-p", type=float, default=1.0)
            p.add_argument("--num-beams", type=int, default=4)
            p.add_argument("--repetition-penalty", type=float, default=1.0)
            p.add_argument("--seed", type=int)
        p.set_defaults(run=run, pipeline_task=task, verb_name=verb)


def run(args) -> int:
    from sesame.errors import SesameError
    from sesame.pipelines import pipeline

    pipe = pipeline(args.pipeline_task, args.model_dir, args.weights)
    verb = args.verb_name
    if verb == "answer":
        print(pipe(args.question, args.context))
        return 0
    texts = args.texts
    if verb == "fill-mask":
        out = pipe(texts, top_k=args.top_k)
        for text, row in zip(texts, out):
            rows = row if row and isinstance(row[0], list) else [row]
            for guesses in rows:
                print(f"{text}\t" + ", ".join(f"{g['token']} ({g['score']:.3f})" for g in guesses))
    elif verb == "generate":
        out = pipe(texts, max_new_tokens=args.max_new_tokens, strategy=args.strategy, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, num_beams=args.num_beams,
                   repetition_penalty=args.repetition_penalty, seed=args.seed)
        for text, cont in zip(texts, out):
            print(f"{text}{cont}")
    elif verb == "classify":
        if args.pair:
            if len(texts) % 2:
                raise SesameError("--pair needs an even number of texts (a1 b1 a2 b2 ...)")
            texts = list(zip(texts[::2], texts[1::2]))
        for text, best in zip(texts, pipe(texts)):
            print(f"{best[0]['label']}\t{best[0]['score']:.3f}\t{text}")
    elif verb == "tag":
        for text, ents in zip(texts, pipe(texts)):
            print(json.dumps({"text": text, "entities": ents}, ensure_ascii=False))
    elif verb == "embed":
        vectors = pipe(texts, pooling=args.pooling, normalize=args.normalize)
        for text, vec in zip(texts, vectors.tolist()):
            print(json.dumps({"text": text, "vector": [round(v, 6) for v in vec]}, ensure_ascii=False))
    else:
        for text, out in zip(texts, pipe(texts)):
            print(f"{text}\t{out}")
    return 0
