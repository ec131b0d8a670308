"""Word hashing: each word becomes its letter trigrams with ``#`` word boundaries
(``good`` -> ``#go goo ood od#``), the input representation of DSSM-style models.

A trigram vocabulary is stored as a Hugging Face ``tokenizer.json`` whose WordLevel
model holds the trigrams (its normaliser and pre-tokenizer find the words); the
``Tokenizer`` recognises such a vocabulary and encodes words trigram by trigram.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

BOUNDARY = "#"


def letter_trigrams(word: str) -> list[str]:
    """``good`` -> ['#go', 'goo', 'ood', 'od#']; a one-letter word -> ['#a#']."""
    padded = BOUNDARY + word + BOUNDARY
    return [padded[i:i + 3] for i in range(len(padded) - 2)]


def trigram_spans(length: int) -> list[tuple[int, int]]:
    """Character span, within a word of ``length`` letters, that each trigram covers
    (boundary marks cover nothing)."""
    return [(max(0, i - 1), min(length, i + 2)) for i in range(length)]


def is_trigram_vocab(tokens: Iterable[str], specials: set[str]) -> bool:
    """True for a vocabulary of letter trigrams (every normal token is 3 characters,
    some open and some close a word)."""
    opens = closes = 0
    for tok in tokens:
        if tok in specials:
            continue
        if len(tok) != 3:
            return False
        opens += tok.startswith(BOUNDARY)
        closes += tok.endswith(BOUNDARY)
    return opens > 0 and closes > 0


def count_trigrams(words: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for word, n in Counter(words).items():
        for tri in letter_trigrams(word):
            counts[tri] += n
    return counts


def decode_trigrams(tokens: list[str], unk: str | None = None) -> str:
    """Rebuild words from consecutive trigrams (inverse of ``letter_trigrams``); an
    unknown trigram loses its letter."""
    words: list[str] = []
    for tok in tokens:
        if len(tok) == 3 and tok.startswith(BOUNDARY):
            words.append(tok[1:].rstrip(BOUNDARY))
        elif len(tok) == 3 and words:
            words[-1] += tok[2] if tok[2] != BOUNDARY else ""
        elif tok != unk:
            words.append(tok)
    return " ".join(words)
