"""A deterministic WordPiece trainer. ``tokenizers``' own WordPiece trainer assigns the ids of
``##`` continuation symbols in hash-map order and breaks equal pair counts by those ids, so
two runs on the same text give different vocabularies (and sizes). This one learns the same
kind of vocabulary the same way — count words, keep the ``limit_alphabet`` most frequent
characters, then repeatedly merge the most frequent adjacent pair (``a`` + ``##b`` -> ``ab``)
until ``vocab_size`` — with every tie broken by the pieces' text, so the same words and
settings give the same vocabulary, byte for byte. The result is an ordinary
``tokenizers`` WordPiece model."""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

PREFIX = "##"


def _join(a: str, b: str) -> str:
    return a + (b[len(PREFIX):] if b.startswith(PREFIX) else b)


def learn_vocab(words: Counter, vocab_size: int, specials: list[str], min_frequency: int = 2,
                limit_alphabet: int | None = None) -> dict[str, int]:
    """token -> id: ``specials``, the alphabet (word-initial and ``##`` forms, sorted), then the
    merged pieces in the order they were learned."""
    chars: Counter = Counter()
    for word, n in words.items():
        for ch in word:
            chars[ch] += n
    alphabet = sorted(chars, key=lambda c: (-chars[c], c))[:limit_alphabet] if limit_alphabet else list(chars)
    keep = set(alphabet)
    seqs: list[list[str]] = []
    counts: list[int] = []
    symbols: set[str] = set()
    for word, n in sorted(words.items()):
        seq = [c if i == 0 else PREFIX + c for i, c in enumerate(word)]
        if not all(c in keep for c in word):
            continue  # a word with a dropped character can only ever be [UNK]
        seqs.append(seq)
        counts.append(n)
        symbols.update(seq)
    vocab = {t: i for i, t in enumerate(specials)}
    for sym in sorted(symbols | keep):  # every kept character can start a word, as in BERT's vocabularies
        vocab.setdefault(sym, len(vocab))
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for w, seq in enumerate(seqs):
        for pair in zip(seq, seq[1:]):
            pairs[pair] += counts[w]
            where[pair].add(w)
    heap = [(-n, a, b) for (a, b), n in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -neg:
            continue  # stale entry
        if -neg < max(min_frequency, 1):
            break
        new = _join(a, b)
        touched: dict[tuple[str, str], int] = {}
        for w in sorted(where.pop((a, b), ())):
            seq, n = seqs[w], counts[w]
            for pair in zip(seq, seq[1:]):
                pairs[pair] -= n
                touched[pair] = 1
                where[pair].discard(w)
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out
            for pair in zip(out, out[1:]):
                pairs[pair] += n
                touched[pair] = 1
                where[pair].add(w)
        pairs.pop((a, b), None)
        for pair in touched:
            n = pairs.get(pair, 0)
            if n <= 0:
                pairs.pop(pair, None)
                where.pop(pair, None)
            elif pair != (a, b):
                heapq.heappush(heap, (-n, *pair))
        vocab.setdefault(new, len(vocab))
    return vocab


def count_words(words: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for w in words:
        counts[w] += 1
    return counts
