"""Data facts behind the English MLM plateau of recipes/bert-tiny-en.toml (issue 11): how the
corpus is cut into documents, how often a token is a separator, what a context-free
predictor scores, and how much of the held-out tail also sits in the training text.

Run from the repository root:  python recipes/diagnose_en_data.py [--recipe R --out F]
Writes docs/evidence/en-plateau/data.json (the tokenizer and shards go to --work). It also
scores two count lookups on the held-out tail (the left neighbour's most frequent follower,
and the most frequent token between the left and right neighbours): what a model that
finds its neighbours can get."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from sesame.config import load_config
from sesame.data import Corpus, build_dataset
from sesame.pretrain import get_corpus, get_tokenizer


def neighbour_lookups(train: np.ndarray, tail: np.ndarray, specials: set, vocab: int, n: int = 20000) -> dict:
    """How much of a masked token its neighbours give away: the training part's most frequent
    token after the left neighbour, and between the left and right neighbours (backing off to
    the left one), scored on ``n`` random non-special positions of the held-out tail."""
    def best(keys: np.ndarray, values: np.ndarray) -> dict:
        order = np.lexsort((values, keys))
        pairs, counts = np.unique(keys[order] * vocab + values[order], return_counts=True)
        k, v = pairs // vocab, pairs % vocab
        top = np.lexsort((-counts, k))
        k, v = k[top], v[top]
        first = np.r_[True, k[1:] != k[:-1]]
        return dict(zip(k[first].tolist(), v[first].tolist()))

    left = best(train[:-1], train[1:])
    both = best(train[:-2] * vocab + train[2:], train[1:-1])
    positions = np.arange(1, len(tail) - 1)
    positions = positions[~np.isin(tail[positions], list(specials))]
    pick = np.random.default_rng(0).choice(positions, min(n, len(positions)), replace=False)
    hit_left = hit_both = 0
    for p in pick.tolist():
        by_left = left.get(int(tail[p - 1]), -1)
        hit_left += by_left == tail[p]
        hit_both += both.get(int(tail[p - 1]) * vocab + int(tail[p + 1]), by_left) == tail[p]
    return {"left_neighbour_lookup_accuracy": round(hit_left / len(pick), 4),
            "left_right_neighbour_lookup_accuracy": round(hit_both / len(pick), 4),
            "lookup_positions": int(len(pick))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/diagnose-en")
    ap.add_argument("--out", default="docs/evidence/en-plateau/data.json")
    ap.add_argument("--recipe", default="recipes/bert-tiny-en.toml")
    args = ap.parse_args()
    run = load_config(args.recipe, ["data.workers=1"])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tok, _ = get_tokenizer(run, work, progress=False)
    corpus, _ = get_corpus(run, work, tok, progress=False)
    doc_len = np.diff(corpus.doc_offsets)
    ds = build_dataset(corpus, run.data)
    n_eval = int(math.floor(len(ds) * 0.02))
    tokens = corpus.tokens(0, corpus.num_tokens).astype(np.int64)
    specials = set(Corpus(work / "corpus").special_ids.values())
    counts = np.bincount(tokens, minlength=tok.vocab_size)
    for s in specials:
        if s is not None and s < len(counts):
            counts[s] = 0
    top = np.argsort(counts)[::-1][:10]
    # held-out tail: which of its 8-token shingles also occur in the training part
    train_end = (len(ds) - n_eval) * ds.content  # stream position where the held-out windows begin
    start_doc = int(np.searchsorted(ds.stream_starts, train_end, side="right") - 1)
    tail_from = int(corpus.doc_offsets[start_doc])
    train_tok, tail_tok = tokens[:tail_from], tokens[tail_from:]

    def shingles(x, n=8):
        w = np.lib.stride_tricks.sliding_window_view(x, n)
        return set(map(bytes, np.ascontiguousarray(w).astype(np.int32)))

    tail = shingles(tail_tok)
    seen = shingles(train_tok)
    result = {
        "recipe": args.recipe, "documents": int(corpus.num_docs), "tokens": int(corpus.num_tokens),
        "doc_tokens_median": float(np.median(doc_len)), "doc_tokens_mean": float(doc_len.mean()),
        "separators_per_128_window": float(128 * corpus.num_docs / (corpus.num_tokens + corpus.num_docs)),
        "windows": len(ds), "held_out_windows": n_eval,
        "context_free_accuracy": float(counts[top[0]] / counts.sum()),
        "top_tokens": [[tok.id_to_token(int(i)), round(float(counts[i] / counts.sum()), 4)] for i in top],
        "held_out_8gram_shingles_seen_in_training": round(len(tail & seen) / max(len(tail), 1), 4),
        "held_out_first_document": int(start_doc),
        **neighbour_lookups(train_tok, tail_tok, specials, tok.vocab_size),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
