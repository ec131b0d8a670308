"""Static vectors into a Transformer: a token-embedding matrix aligned to a tokenizer's
vocabulary, and the hook that keeps it frozen for the first steps of training.

Each non-special token is looked up as the text it stands for (WordPiece ``##``,
SentencePiece ``▁``, byte-level ``Ġ`` and ``</w>`` marks removed; lowercased when the
vectors are):

1. ``exact``: the vectors hold that word;
2. ``ngrams``: fastText vectors build it from its character n-grams;
3. ``pieces``: otherwise the token's vector is the count-weighted mean of the vectors of
   the vocabulary words whose tokenization contains the token (``##ing`` from running,
   eating, ...);
4. ``uncovered``: none of these; the model keeps its own initialisation for the row.

Copied rows are rescaled so their standard deviation equals the model's initial rows'
(``rescale``), since static vectors are not on a Transformer's initial scale."""
from __future__ import annotations

import numpy as np
import torch

from sesame.errors import ConfigError
from sesame.static.vectors import Vectors
from sesame.tokenize.tokenizer import Tokenizer

_MARKS = ("##", "\u2581", "\u0120")


def token_text(token: str) -> str:
    for mark in _MARKS:
        if token.startswith(mark):
            token = token[len(mark):]
    if token.endswith("</w>"):
        token = token[:-4]
    return token


def align_vectors(vectors: Vectors, tokenizer: Tokenizer, max_words: int = 50_000):
    """(matrix (V, dim) float32, source per token: 'special' | 'exact' | 'ngrams' | 'pieces' |
    'uncovered', report). ``max_words``: how many of the most frequent vector words are
    tokenized for the ``pieces`` averages."""
    size = tokenizer.vocab_size
    lower = all(w == w.lower() for w in vectors.words[:1000])
    matrix = np.zeros((size, vectors.dim), dtype=np.float32)
    source = ["uncovered"] * size
    for tok, i in tokenizer.get_vocab().items():
        if i >= size:
            continue
        if tokenizer.is_special(i):
            source[i] = "special"
            continue
        text = token_text(tok)
        key = text.lower() if lower else text
        if key and key in vectors:
            matrix[i], source[i] = vectors.vector(key), "exact"
        elif key and vectors.subwords is not None:
            vec = vectors.vector(key)
            if vec is not None:
                matrix[i], source[i] = vec, "ngrams"
    missing = {i for i, s in enumerate(source) if s == "uncovered"}
    if missing:
        words = vectors.words[:max_words]
        weights = np.asarray(vectors.counts[:max_words] if vectors.counts else [1] * len(words), dtype=np.float64)
        sums = np.zeros((size, vectors.dim))
        mass = np.zeros(size)
        for w, weight, enc in zip(words, weights, tokenizer.encode_batch(list(words))):
            ids = [t for t in set(enc.ids) if t in missing]
            if ids:
                sums[ids] += weight * vectors.vector(w)
                mass[ids] += weight
        for i in np.nonzero(mass)[0]:
            matrix[i], source[i] = sums[i] / mass[i], "pieces"
    counts = {k: source.count(k) for k in ("special", "exact", "ngrams", "pieces", "uncovered")}
    normal = size - counts["special"]
    report = {**counts, "tokens": size,
              "coverage": (counts["exact"] + counts["ngrams"] + counts["pieces"]) / max(normal, 1),
              "exact_coverage": counts["exact"] / max(normal, 1)}
    return matrix, source, report


def init_embedding(weight: torch.Tensor, vectors: Vectors, tokenizer: Tokenizer, rescale: bool = True,
                   max_words: int = 50_000) -> dict:
    """Copy aligned static vectors into a (V, dim) token-embedding ``weight`` in place (rows
    of tokens without a vector keep their values). Returns the coverage report."""
    if weight.shape[0] < tokenizer.vocab_size:
        raise ConfigError(f"the embedding has {weight.shape[0]} rows but the tokenizer {tokenizer.vocab_size} "
                          "tokens; use the model's own tokenizer")
    if weight.shape[1] != vectors.dim:
        raise ConfigError(f"the vectors have {vectors.dim} dimensions, the model's token embedding "
                          f"{weight.shape[1]}; train vectors with --dim {weight.shape[1]}")
    matrix, source, report = align_vectors(vectors, tokenizer, max_words)
    rows = [i for i, s in enumerate(source) if s in ("exact", "ngrams", "pieces")]
    if not rows:
        return {**report, "scale": None}
    new = torch.from_numpy(matrix[rows])
    scale = 1.0
    if rescale:
        scale = float(weight.detach().float().std() / new.std().clamp(min=1e-12))
        new = new * scale
    with torch.no_grad():
        weight[torch.tensor(rows)] = new.to(weight.dtype)
    return {**report, "scale": scale}


class FreezeFor:
    """A trainer ``on_step`` hook: ``params`` do not train before step ``steps`` and do from
    then on (a pure function of the step, so a resumed run agrees). Chain ``then``."""

    def __init__(self, params, steps: int, then=None):
        self.params, self.steps, self.then = list(params), int(steps), then

    def __call__(self, step: int) -> None:
        for p in self.params:
            p.requires_grad_(step >= self.steps)
        if self.then is not None:
            self.then(step)
