"""Entity and phrase spans for ERNIE-style masking: from tagged corpora (People's Daily
``nr``/``ns``/``nt``, CoNLL IOB tags) or a phrase lexicon, as character spans, and
their mapping onto tokens."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sesame.errors import DataError
from sesame.tokenize.chars import is_cjk

# People's Daily (PKU) part-of-speech tags that name entities.
PEOPLES_DAILY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG", "nz": "MISC"}
PHRASE = "PHRASE"

Entity = tuple[int, int, str]  # (start char, end char, type)


def tagged_entities(words: Sequence[tuple[int, int]], tags: Sequence[str],
                    types: dict[str, str] = PEOPLES_DAILY_TYPES) -> list[Entity]:
    """Entities from ``word/tag`` words; a surname and given name tagged apart
    (``江/nr 泽民/nr``) form one person."""
    out: list[Entity] = []
    prev, joined = -2, False
    for i in [i for i, tag in enumerate(tags) if tag in types]:
        s, e = words[i]
        tag = tags[i]
        if tag == "nr" and prev == i - 1 and tags[prev] == "nr" and not joined and out[-1][1] == s:
            out[-1] = (out[-1][0], e, types[tag])  # surname + given name
            joined = True
        else:
            out.append((s, e, types[tag]))
            joined = False
        prev = i
    return out


def iob_entities(words: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[Entity]:
    """Entities from IOB1 or IOB2 tags (``B-PER``, ``I-PER``, ``O``); an ``I-`` tag after
    ``O`` or another type starts an entity, as IOB1 has it."""
    out: list[Entity] = []
    prev = "O"
    for (s, e), tag in zip(words, tags):
        if tag == "O" or "-" not in tag:
            prev = "O"
            continue
        pos, kind = tag.split("-", 1)
        if pos == "B" or prev != kind or not out:
            out.append((s, e, kind))
        else:
            out[-1] = (out[-1][0], e, kind)
        prev = kind
    return out


class PhraseLexicon:
    """Phrases (``phrase[<TAB>type]`` per line) found in text by longest match. A phrase
    that starts or ends with a (non-CJK) letter or digit only matches at word edges there;
    CJK phrases match anywhere."""

    def __init__(self, phrases: dict[str, str]):
        self.phrases = phrases
        self._lengths: dict[str, list[int]] = {}
        for p in phrases:
            self._lengths.setdefault(p[0], []).append(len(p))
        for lens in self._lengths.values():
            lens.sort(reverse=True)

    @classmethod
    def load(cls, path: str | Path) -> "PhraseLexicon":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"phrase lexicon {str(path)!r} does not exist; give a file of phrase[<TAB>type] lines")
        phrases: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
            if not line.strip() or line.startswith("#"):
                continue
            phrase, _, kind = line.rstrip("\r").partition("\t")
            phrase = phrase.strip()
            if phrase:
                phrases[phrase] = kind.strip() or PHRASE
        if not phrases:
            raise DataError(f"phrase lexicon {str(path)!r} holds no phrases")
        return cls(phrases)

    def find(self, text: str) -> list[Entity]:
        out: list[Entity] = []
        i, n = 0, len(text)
        lengths, phrases = self._lengths, self.phrases
        while i < n:
            lens = lengths.get(text[i])
            if lens is not None and not (_wordish(text[i]) and i > 0 and _wordish(text[i - 1])):
                for k in lens:
                    end = i + k
                    cand = text[i:end]
                    if len(cand) == k and cand in phrases and not (
                            _wordish(cand[-1]) and end < n and _wordish(text[end])):
                        out.append((i, end, phrases[cand]))
                        i = end - 1
                        break
            i += 1
        return out


def _wordish(ch: str) -> bool:
    """A letter or digit of a space-separated script (CJK characters are not)."""
    return ch.isalnum() and not is_cjk(ch)


def char_spans_to_tokens(spans: Sequence[tuple[int, int]], offsets: np.ndarray) -> np.ndarray:
    """Character spans -> (k, 2) token spans [start, end) of the tokens that overlap
    them (offsets: (N, 2) token character offsets, non-decreasing). Spans that cover no
    token map to an empty span (start == end)."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if not len(spans) or not len(offsets):
        return np.zeros((len(spans), 2), dtype=np.int64)
    starts = offsets[:, 0]
    ends = offsets[:, 1]
    first = np.searchsorted(ends, spans[:, 0], side="right")
    last = np.searchsorted(starts, spans[:, 1], side="left")
    return np.stack([first, np.maximum(first, last)], axis=1)
