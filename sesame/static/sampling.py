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
    """Draws negative words from ``noise_distribution`` by Walker's alias method: a uniform
    word i, kept with probability ``accept[i]``, else replaced by ``alias[i]`` (exact up to
    float64 rounding; O(1) per draw, where inverting the CDF costs a binary search)."""

    def __init__(self, counts: np.ndarray, power: float = 0.75):
        self.probs = noise_distribution(counts, power)
        v = len(self.probs)
        scaled = self.probs * v
        self.accept = np.ones(v)
        self.alias = np.arange(v, dtype=np.int64)
        small = [i for i in range(v) if scaled[i] < 1.0]
        large = [i for i in range(v) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large[-1]
            self.accept[s], self.alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            if scaled[g] < 1.0:
                small.append(large.pop())
        # what is left is 1 up to rounding: always kept

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        i = rng.integers(0, len(self.probs), size=shape)
        return np.where(rng.random(shape) < self.accept[i], i, self.alias[i])


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


def window_sizes(n: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """word2vec's dynamic window: every position draws its reach b from 1..window."""
    return rng.integers(1, window + 1, size=n)


def skipgram_pairs(ids: np.ndarray, doc: np.ndarray, window: int, rng: np.random.Generator,
                   b: np.ndarray | None = None):
    """Skip-gram pairs of one chunk: each position draws its window b from 1..window
    (word2vec's dynamic window, which weights a context at distance d by (window - d + 1) /
    window on average) and pairs with every word within b on both sides in the same document.
    Returns (input = context word, output = centre word), as word2vec trains them; built
    for the whole chunk at once, one shifted comparison per distance."""
    n = len(ids)
    b = window_sizes(n, window, rng) if b is None else b
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


def cbow_contexts(ids: np.ndarray, doc: np.ndarray, window: int, rng: np.random.Generator,
                  b: np.ndarray | None = None):
    """CBOW examples of one chunk: (contexts (n, 2 * window) with -1 where absent, centres (n,)),
    the same dynamic window as ``skipgram_pairs``; centres without any context are dropped."""
    n = len(ids)
    b = window_sizes(n, window, rng) if b is None else b
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


def ragged(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A -1-padded (n, m) table as (values, offsets): row i is ``values[offsets[i]:offsets[i + 1]]``."""
    valid = padded >= 0
    return padded[valid], np.concatenate([[0], np.cumsum(valid.sum(1))]).astype(np.int64)


def gather_ragged(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated ragged rows ``rows`` of (values, offsets), and for each value the
    position in ``rows`` it came from."""
    lens = offsets[rows + 1] - offsets[rows]
    seg = np.repeat(np.arange(len(rows)), lens)
    first = np.cumsum(lens) - lens
    return values[offsets[rows][seg] + np.arange(len(seg)) - first[seg]], seg
