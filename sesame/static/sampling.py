"""The word2vec family's sampling: the noise distribution for negative sampling, the
keep probability of frequent-word subsampling, and the dynamic window that turns a chunk
of the corpus into (input, output) training pairs."""
from __future__ import annotations

import numpy as np


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """P(w) proportional to count(w) ** power (word2vec's unigram^0.75 table, exactly)."""
    p = np.asarray(counts, dtype=np.float64) ** power
    return p / p.sum()


class NoiseSampler:
    """Draws negative words from ``noise_distribution`` by inverting its CDF."""

    def __init__(self, counts: np.ndarray, power: float = 0.75):
        self.probs = noise_distribution(counts, power)
        self.cdf = np.cumsum(self.probs)
        self.cdf[-1] = 1.0

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        return np.searchsorted(self.cdf, rng.random(shape), side="right").astype(np.int64)


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's subsampling: a word of frequency f = count / total is kept with
    probability min(1, (sqrt(f / t) + 1) * t / f); ``sample`` = t, 0 keeps every word."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    ratio = sample * counts.sum() / counts
    return np.minimum((np.sqrt(1.0 / ratio) + 1.0) * ratio, 1.0)


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of the positions of ``ids`` that survive subsampling."""
    return rng.random(len(ids)) < keep[ids]


def skipgram_pairs(ids: np.ndarray, doc: np.ndarray, window: int, rng: np.random.Generator):
    """Skip-gram pairs of one chunk: each position draws its window b from 1..window
    (word2vec's dynamic window, which weights a context at distance d by (window - d + 1) /
    window on average) and pairs with every word within b on both sides in the same document.
    Returns (input = context word, output = centre word), as word2vec trains them."""
    n = len(ids)
    b = rng.integers(1, window + 1, size=n)
    inputs, outputs = [], []
    for o in range(1, min(window, n - 1) + 1):
        same = doc[:-o] == doc[o:]
        right = same & (b[:-o] >= o)  # centre i, context i + o
        left = same & (b[o:] >= o)  # centre i + o, context i
        inputs += [ids[o:][right], ids[:-o][left]]
        outputs += [ids[:-o][right], ids[o:][left]]
    if not inputs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(inputs).astype(np.int64), np.concatenate(outputs).astype(np.int64)


def cbow_contexts(ids: np.ndarray, doc: np.ndarray, window: int, rng: np.random.Generator):
    """CBOW examples of one chunk: (contexts (n, 2 * window) with -1 where absent, centres (n,)),
    the same dynamic window as ``skipgram_pairs``; centres without any context are dropped."""
    n = len(ids)
    b = rng.integers(1, window + 1, size=n)
    ctx = np.full((n, 2 * window), -1, dtype=np.int64)
    pos = np.arange(n)
    for k, o in enumerate([o for o in range(-window, window + 1) if o]):
        j = pos + o
        ok = (j >= 0) & (j < n) & (abs(o) <= b)
        jj = np.clip(j, 0, n - 1)
        ok &= doc[jj] == doc
        ctx[:, k] = np.where(ok, ids[jj], -1)
    has = (ctx >= 0).any(1)
    return ctx[has], ids[has].astype(np.int64)
