"""Rule-based sentence splitting for English and Chinese.

A sentence ends at ``。！？`` (with any closing quotes or brackets), at ``.!?`` followed
by whitespace and a capital, digit, opening quote or CJK character (not after a known
abbreviation or a one-letter initial), and at a blank line. The spans returned
partition the text: the whitespace between two sentences leads the second one, so
encoding sentence by sentence gives the same tokens as encoding the whole text.
"""
from __future__ import annotations

import re

from sesame.tokenize.chars import CJK_CLASS, is_cjk

Span = tuple[int, int]

ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr vs etc e.g i.e cf no nos fig figs inc ltd co corp mt ft gen col capt lt sgt
rev hon gov sen rep jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
u.s u.k u.n p.m a.m approx dept est vol op ed eds al viz ca messrs mme mlle pp
""".split())

_END = re.compile(r"(?:[。！？]+|[.!?]+|…+)[”’\"'」』）)\]》]*")
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_OPENERS = set("“‘\"'([{《「『¿¡")
_WORD_BEFORE = re.compile(r"([^\s\"'“‘(\[]+)$")
_CJK_START = re.compile(CJK_CLASS)


def _ascii_boundary(text: str, start: int, end: int) -> bool:
    """Is ``.!?`` at text[start:end] the end of a sentence?"""
    n = len(text)
    if end >= n or not text[end].isspace():
        return False
    j = end
    while j < n and text[j].isspace():
        j += 1
    if j >= n:
        return False
    nxt = text[j]
    if not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS or is_cjk(nxt)):
        return False
    if text[start:end].rstrip("”’\"'」』）)]》") == ".":
        m = _WORD_BEFORE.search(text, max(0, start - 24), start)
        if m:
            word = m.group(1)
            if word.lower().rstrip(".") in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                return False
    return True


def sentence_spans(text: str, mode: str = "rules") -> list[Span]:
    """Spans that partition ``text`` into sentences (``mode``: rules, line or none).
    Whitespace-only pieces join the sentence before them; empty text gives []."""
    if not text.strip():
        return []
    n = len(text)
    if mode == "none":
        return [(0, n)]
    cuts: set[int] = set()
    if mode == "line":
        cuts.update(m.start() for m in re.finditer("\n", text))
    else:
        for m in _END.finditer(text):
            s, e = m.span()
            first = text[s]
            if first in "。！？…":
                if e < n:
                    cuts.add(e)
            elif _ascii_boundary(text, s, e):
                cuts.add(e)
            elif e < n and first in "!?" and is_cjk(text[e]) and s > 0 and is_cjk(text[s - 1]):
                cuts.add(e)
        cuts.update(m.start() for m in _PARAGRAPH.finditer(text))
    spans: list[Span] = []
    prev = 0
    for cut in sorted(cuts):
        if cut <= prev or cut >= n:
            continue
        if text[prev:cut].strip():
            spans.append((prev, cut))
            prev = cut
    if spans and not text[prev:].strip():
        spans[-1] = (spans[-1][0], n)
    else:
        spans.append((prev, n))
    return spans


def split_sentences(text: str, mode: str = "rules") -> list[str]:
    """The sentences of ``text`` as strings, stripped."""
    return [text[s:e].strip() for s, e in sentence_spans(text, mode)]
