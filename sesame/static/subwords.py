"""fastText subwords: the character n-grams of ``<word>`` (lengths minn..maxn, the whole
bracketed word excluded since the word has its own vector), hashed with 32-bit FNV-1a
over UTF-8 bytes into ``buckets`` rows.

A vocabulary word's vector is the mean of its own row and its n-gram rows; a word
outside the vocabulary gets the mean of its n-gram rows (zeros when it has none)."""
from __future__ import annotations

import numpy as np

_FNV_OFFSET, _FNV_PRIME, _MASK = 2166136261, 16777619, 0xFFFFFFFF


def fnv1a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def char_ngrams(word: str, minn: int, maxn: int) -> list[str]:
    """The n-grams of ``<word>``, shortest first at each start position."""
    w = f"<{word}>"
    out = []
    for i in range(len(w)):
        for n in range(minn, maxn + 1):
            if i + n > len(w):
                break
            gram = w[i:i + n]
            if gram != w:
                out.append(gram)
    return out


def ngram_buckets(word: str, minn: int, maxn: int, buckets: int) -> list[int]:
    return [fnv1a(g.encode("utf-8")) % buckets for g in char_ngrams(word, minn, maxn)]


def subword_table(words: list[str], minn: int, maxn: int, buckets: int) -> np.ndarray:
    """(V, M) input rows of every vocabulary word: its own row ``i`` then ``V + bucket`` for
    each n-gram, -1 padded."""
    v = len(words)
    rows = [[i] + [v + b for b in ngram_buckets(w, minn, maxn, buckets)] for i, w in enumerate(words)]
    width = max(map(len, rows))
    table = np.full((v, width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        table[i, :len(r)] = r
    return table
