"""Word boundaries: pluggable Chinese segmenters, gold segmentation, and the rule that
turns word spans into per-token word-start records.

English words come from the tokenizer's pre-tokenizer. For CJK tokens a segmenter's
words decide: a CJK token starts a word when it begins a different segmenter word than
the token before it. A change of script (CJK next to non-CJK) always starts a word.
"""
from __future__ import annotations

import functools
import io
import itertools
import logging
import re
from pathlib import Path

import numpy as np

from sesame.errors import DataError, TokenizerError
from sesame.tokenize.chars import codepoints, cjk_mask, has_cjk, space_mask

Span = tuple[int, int]
_WORD = re.compile(r"\w+|[^\w\s]")


class Segmenter:
    """Splits text into words; ``spans(text)`` gives (start, end) character spans."""

    name = "none"

    def spans(self, text: str) -> list[Span]:  # pragma: no cover - interface
        raise NotImplementedError


class JiebaSegmenter(Segmenter):
    """jieba word segmentation, with an optional user dictionary (``word [freq] [tag]`` lines,
    from a file or as text)."""

    name = "jieba"

    def __init__(self, user_dict: str | Path | None = None, hmm: bool = True, user_words: str | None = None):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self.hmm = hmm
        self.user_dict = str(user_dict) if user_dict else None
        if user_dict is not None:
            path = Path(user_dict)
            if not path.is_file():
                raise TokenizerError(f"jieba user dictionary {str(path)!r} does not exist; check the path")
            user_words = path.read_text(encoding="utf-8")
        self.user_words = user_words
        if user_words is None:
            self._tk = jieba.dt  # the shared default dictionary
        else:
            self._tk = jieba.Tokenizer()  # its own copy, so the user words stay local
            self._tk.load_userdict(io.StringIO(user_words))
        self._tk.initialize()

    def spans(self, text: str) -> list[Span]:
        return [(s, e) for w, s, e in self._tk.tokenize(text, HMM=self.hmm) if not w.isspace()]

    def spec(self) -> dict:
        """What ``segmenter_from_spec`` rebuilds it from (the user words inline, so a saved
        tokenizer needs no other file)."""
        return {"name": self.name, "hmm": self.hmm, "user_words": self.user_words}


def segmenter_from_spec(spec: dict) -> Segmenter:
    if not isinstance(spec, dict) or spec.get("name") != "jieba" or set(spec) - {"name", "hmm", "user_words"}:
        raise TokenizerError(f"unknown word segmenter {spec!r} in the tokenizer file; sesame saves "
                             "{'name': 'jieba', 'hmm': ..., 'user_words': ...}")
    return JiebaSegmenter(hmm=bool(spec.get("hmm", True)), user_words=spec.get("user_words"))


def word_spans(text: str, segmenter: Segmenter | None) -> list[Span]:
    """The words of ``text`` as static embeddings count them: the segmenter's where the
    text has a CJK character, else runs of word characters and single punctuation marks."""
    if segmenter is not None and has_cjk(text):
        return segmenter.spans(text)
    return [m.span() for m in _WORD.finditer(text)]


@functools.lru_cache(maxsize=4)
def get_segmenter(name: str, user_dict: str | None = None) -> Segmenter | None:
    """``jieba`` or ``none``; gold segmentation comes with the corpus, not from a function."""
    if name == "none":
        return None
    if name == "jieba":
        return JiebaSegmenter(user_dict)
    raise TokenizerError(
        f"segmenter {name!r} cannot segment raw text; use 'jieba' or 'none' ('gold' needs a "
        "pre-segmented corpus such as People's Daily in word/tag format)"
    )


_TAGGED = re.compile(r"(\S+)/([^\s/]+)(?=\s|$)")


def parse_tagged(line: str) -> tuple[str, list[Span], list[str]]:
    """One ``word/tag  word/tag`` line -> (text, word spans, tags).

    Words are joined without spaces, except between two ASCII letters/digits.
    Compound brackets (``[中央/n 人民/n]nt``) are dropped, their words kept."""
    if "[" in line:
        line = _CLOSE.sub(r"\1", _OPEN.sub("", line))
    pairs = _TAGGED.findall(line)
    if len(pairs) != len(line.split()):
        bad = next((item for item in line.split() if not _TAGGED.fullmatch(item)), line)
        raise DataError(f"tagged token {bad!r} is not word/tag")
    words = [w for w, _ in pairs]
    if not _ASCII_JOIN.search(line):  # no two ASCII words meet: plain concatenation
        ends = list(itertools.accumulate(map(len, words)))
        return "".join(words), list(zip([0] + ends[:-1], ends)), [t for _, t in pairs]
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    prev = ""
    for word in words:
        if prev and prev < "\x80" and word[0] < "\x80" and prev.isalnum() and word[0].isalnum():
            parts.append(" ")
            pos += 1
        spans.append((pos, pos + len(word)))
        parts.append(word)
        pos += len(word)
        prev = word[-1]
    return "".join(parts), spans, [t for _, t in pairs]


_ASCII_JOIN = re.compile(r"[A-Za-z0-9]/[^\s/]+\s+[A-Za-z0-9]")
_OPEN = re.compile(r"(?<!\S)\[(?=\S+/)")
_CLOSE = re.compile(r"(/[^\s/\]]+)\][a-z]+(?=\s|$)")


def word_starts_with_words(text: str, offsets: np.ndarray, pre_starts: np.ndarray,
                           words: list[Span] | np.ndarray, gold: bool | np.ndarray = False) -> np.ndarray:
    """Per-token word starts for ``text`` given word character spans.

    ``offsets``: (N, 2) token character offsets into ``text``; ``pre_starts``: (N,) the
    pre-tokenizer's word starts. A token belongs to the word holding its first non-space
    character. Where that word (or the previous token's) contains a CJK character, the
    token starts a word when its word differs from the previous token's; elsewhere the
    pre-tokenizer decides. ``gold=True`` (or a per-token boolean array) trusts the words
    everywhere they exist (a pre-segmented corpus). A token that begins inside a word continues it, so a piece
    spanning two words marks only the first."""
    n = len(offsets)
    out = np.asarray(pre_starts, dtype=bool).copy()
    if n < 2 or not len(text):
        return out
    cps = codepoints(text)
    length = len(cps)
    space = space_mask(cps)
    idx = np.where(space, length, np.arange(length))
    nxt = np.minimum.accumulate(idx[::-1])[::-1]  # first non-space character at or after i
    starts = np.minimum(np.maximum(offsets[:, 0], 0), length - 1)
    ends = np.minimum(offsets[:, 1], length)
    adj = nxt[starts]
    adj = np.minimum(np.where(adj < np.maximum(ends, starts + 1), adj, starts), length - 1)
    w = np.asarray(words, dtype=np.int64).reshape(-1, 2)
    w = w[(w[:, 1] > w[:, 0]) & (w[:, 0] >= 0) & (w[:, 1] <= length)]
    char_word = np.full(length, -1, dtype=np.int64)
    if len(w):
        lens = w[:, 1] - w[:, 0]
        first = np.cumsum(lens) - lens
        pos = np.arange(int(lens.sum())) - np.repeat(first - w[:, 0], lens)
        char_word[pos] = np.repeat(np.arange(len(w)), lens)
    tok_word = char_word[adj]
    tok_word[space[adj]] = -1
    inside = tok_word >= 0
    decided = np.zeros(n, dtype=bool)
    if gold is not True:
        csum = np.concatenate([[0], np.cumsum(cjk_mask(cps))])
        word_cjk = (csum[w[:, 1]] - csum[w[:, 0]] > 0) if len(w) else np.zeros(0, bool)
        decided[inside] = word_cjk[tok_word[inside]]
    if gold is not False:
        decided |= inside & gold
    use = decided[1:] | decided[:-1]
    rest = out[1:]
    rest[use] = (tok_word[1:] != tok_word[:-1])[use]
    return out
