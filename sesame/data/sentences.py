"""Rule-based sentence splitting for English and Chinese.

A sentence ends at ``。！？`` or an ellipsis ``……`` (with any closing quotes or
brackets), at ``.!?`` followed by whitespace and then a capital, digit, opening quote
or CJK character (a lone ``.`` not after a known abbreviation or a one-letter
initial), at ``!?`` between two CJK characters, and at a blank line. The spans
returned partition the text: the whitespace between two sentences leads the second one.
"""
from __future__ import annotations

import re

from sesame.tokenize.chars import CJK_CLASS

Span = tuple[int, int]

ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr vs etc e.g i.e cf no nos fig figs inc ltd co corp mt ft gen col capt lt sgt
rev hon gov sen rep jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
u.s u.k u.n p.m a.m approx dept est vol op ed eds al viz ca messrs mme mlle pp
""".split())

_CJK = CJK_CLASS[1:-1]
CLOSERS = "”’\"'」』）)]》"
_CLOSE = re.escape(CLOSERS)
_NEXT = "A-Z0-9À-ÖØ-ÞΑ-ΩА-Я\"'“‘(\\[{¿¡《「『" + _CJK
# A lone period ends a sentence unless it follows an abbreviation or a one-letter initial:
# fixed-width look-behinds checked after the period, so the regex still scans quickly for
# its first character and the whole rule runs inside the regex engine.
_GUARDS = "".join(f"(?<!\\b{re.escape(a)}\\.)" for a in sorted(ABBREVIATIONS)) + "(?<!\\b[^\\W\\d_]\\.)"
_ASCII_END = re.compile(rf"[.!?…](?=[.!?…]*[{_CLOSE}]*\s+[{_NEXT}])(?:(?<=[!?…])|(?=[.!?…])|(?i:{_GUARDS}))"
                        rf"[.!?…]*[{_CLOSE}]*")
_CJK_END = re.compile(rf"[。！？…!?]+[{_CLOSE}]*")
_CJK_CHAR = re.compile(CJK_CLASS)
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_NONSPACE = re.compile(r"\S")
_LINE = re.compile("\n")
_MAYBE_END = re.compile("[.!?…。！？\n]")


def sentence_spans(text: str, mode: str = "rules") -> list[Span]:
    """Spans that partition ``text`` into sentences (``mode``: rules, line or none).
    Whitespace-only pieces join the sentence before them; blank text gives []."""
    n = len(text)
    if not _NONSPACE.search(text):
        return []
    if mode == "none" or not _MAYBE_END.search(text, 0, n - 1):
        return [(0, n)]  # no terminator, newline or CJK punctuation before the last character
    if mode == "line":
        cuts = [m.start() for m in _LINE.finditer(text)]
        check = True
    else:
        cuts = []
        for m in _CJK_END.finditer(text):
            s, e = m.span()
            mark = m.group()
            if "。" in mark or "！" in mark or "？" in mark or mark.count("…") >= 2 or (
                    s > 0 and e < n and _CJK_CHAR.match(text, s - 1) and _CJK_CHAR.match(text, e)):
                cuts.append(e)
        cuts += [m.end() for m in _ASCII_END.finditer(text)]
        paragraphs = [m.start() for m in _PARAGRAPH.finditer(text)]
        check = bool(paragraphs)  # a cut right after a terminator always has text before it
        cuts = sorted(set(cuts + paragraphs))
    spans: list[Span] = []
    prev = 0
    for cut in cuts:
        if prev < cut < n and (not check or _NONSPACE.search(text, prev, cut)):
            spans.append((prev, cut))
            prev = cut
    if spans and not _NONSPACE.search(text, prev):
        spans[-1] = (spans[-1][0], n)
    else:
        spans.append((prev, n))
    return spans


def split_sentences(text: str, mode: str = "rules") -> list[str]:
    """The sentences of ``text`` as strings, stripped."""
    return [text[s:e].strip() for s, e in sentence_spans(text, mode)]
