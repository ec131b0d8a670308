"""Examples from a prepared corpus: packed fixed-length windows, or one document (or
sentence) per example with padding. Every example is a dict of numpy arrays of length
``seq_len``:

- ``input_ids`` (int64), ``token_type_ids`` (int64)
- ``attention_mask`` (bool, True at real tokens), ``special_tokens_mask`` (bool, True at
  [CLS]/[SEP]/separators/padding)
- ``word_starts`` (bool, True where a word begins: what whole-word masking reads)
- ``doc_ids`` (int64, document number within the example, -1 at padding: attention
  kept within a document), ``position_ids`` (int64, restart at each packed document)
- ``entity_ids`` (int64, 0 outside entities, 1, 2, ... per entity span in the example)
  and ``entity_types`` (int64, index into ``corpus.entity_types``, -1 outside)
- ``sentence_starts`` (bool, True where the corpus recorded a sentence start: what
  BART's sentence permutation reads)

Long documents are chunked into several examples; no token is dropped.
"""
from __future__ import annotations

import numpy as np

from sesame.data.shards import Corpus
from sesame.errors import DataError

FIELDS = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "word_starts", "doc_ids",
          "position_ids", "entity_ids", "entity_types", "sentence_starts")


def empty_example(seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.full(seq_len, pad_id, dtype=np.int64),
        "token_type_ids": np.zeros(seq_len, dtype=np.int64),
        "attention_mask": np.zeros(seq_len, dtype=bool),
        "special_tokens_mask": np.ones(seq_len, dtype=bool),
        "word_starts": np.zeros(seq_len, dtype=bool),
        "doc_ids": np.full(seq_len, -1, dtype=np.int64),
        "position_ids": np.zeros(seq_len, dtype=np.int64),
        "entity_ids": np.zeros(seq_len, dtype=np.int64),
        "entity_types": np.full(seq_len, -1, dtype=np.int64),
        "sentence_starts": np.zeros(seq_len, dtype=bool),
    }


def sentence_starts(corpus: Corpus, tokpos: np.ndarray) -> np.ndarray:
    """True where corpus token ``tokpos`` (non-decreasing) begins a recorded sentence."""
    offsets = corpus.sent_offsets
    k = np.minimum(np.searchsorted(offsets, tokpos), len(offsets) - 1)
    return offsets[k] == tokpos


def special_id(corpus: Corpus, *roles: str) -> int | None:
    for role in roles:
        if corpus.special_ids.get(role) is not None:
            return int(corpus.special_ids[role])
    return None


def _pad_id(corpus: Corpus, pad_id: int | None) -> int:
    if pad_id is not None:
        return pad_id
    pad = special_id(corpus, "pad", "eos")
    return 0 if pad is None else pad


def mark_entities(ex: dict, corpus: Corpus, tokpos: np.ndarray, slots: np.ndarray) -> None:
    """Fill entity_ids/entity_types at example positions ``slots`` holding corpus
    tokens ``tokpos`` (non-decreasing)."""
    if not len(tokpos) or not len(corpus.entities):
        return
    ents = corpus.entities_in(int(tokpos.min()), int(tokpos.max()) + 1)
    if not len(ents):
        return
    k = np.searchsorted(ents[:, 0], tokpos, side="right") - 1
    inside = (k >= 0) & (tokpos < ents[np.maximum(k, 0), 1])
    if not inside.any():
        return
    local = np.unique(k[inside], return_inverse=True)[1]
    ex["entity_ids"][slots[inside]] = local + 1 + ex["entity_ids"].max()
    ex["entity_types"][slots[inside]] = ents[k[inside], 2]


class PackedWindows:
    """Fixed-length windows over all documents laid end to end, each document followed
    by ``separator`` (default [SEP] or </s>), each window starting with ``prefix``
    (default [CLS] when the vocabulary has one; pass ``()`` for GPT-style windows). The
    last window is padded."""

    def __init__(self, corpus: Corpus, seq_len: int, *, prefix: tuple[int, ...] | None = None,
                 separator: int | None | str = "auto", pad_id: int | None = None):
        self.corpus, self.seq_len = corpus, int(seq_len)
        if prefix is None:
            cls = special_id(corpus, "cls")
            prefix = () if cls is None else (cls,)
        self.prefix = tuple(int(p) for p in prefix)
        self.separator = special_id(corpus, "sep", "eos") if separator == "auto" else separator
        self.pad_id = _pad_id(corpus, pad_id)
        self.content = self.seq_len - len(self.prefix)
        if self.content < 1:
            raise DataError(f"seq_len {seq_len} leaves no room for tokens after the prefix")
        sep = 1 if self.separator is not None else 0
        self.doc_len = np.diff(corpus.doc_offsets)
        self.stream_starts = corpus.doc_offsets[:-1] + np.arange(corpus.num_docs) * sep
        self.stream_len = corpus.num_tokens + corpus.num_docs * sep
        self.sep = sep
        if self.stream_len == 0:
            raise DataError(f"{corpus.path} holds no tokens; nothing to train on")

    def __len__(self) -> int:
        return -(-self.stream_len // self.content)

    def example(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise DataError(f"window {index} is outside 0..{len(self) - 1}")
        a = index * self.content
        b = min(a + self.content, self.stream_len)
        pos = np.arange(a, b)
        d = np.searchsorted(self.stream_starts, pos, side="right") - 1
        within = pos - self.stream_starts[d]
        is_sep = within >= self.doc_len[d]
        ex = empty_example(self.seq_len, self.pad_id)
        p = len(self.prefix)
        slots = np.arange(p, p + len(pos))
        tok_slots = slots[~is_sep]
        tokpos = self.corpus.doc_offsets[d[~is_sep]] + within[~is_sep]
        if len(tokpos):
            t0, t1 = int(tokpos[0]), int(tokpos[-1]) + 1
            ex["input_ids"][tok_slots] = self.corpus.tokens(t0, t1)
            ex["word_starts"][tok_slots] = self.corpus.word_starts(t0, t1)
            ex["special_tokens_mask"][tok_slots] = False
            ex["sentence_starts"][tok_slots] = sentence_starts(self.corpus, tokpos)
            mark_entities(ex, self.corpus, tokpos, tok_slots)
        if is_sep.any():
            ex["input_ids"][slots[is_sep]] = self.separator
        ex["input_ids"][:p] = self.prefix
        ex["attention_mask"][: p + len(pos)] = True
        ex["doc_ids"][slots] = d - d[0]
        ex["doc_ids"][:p] = 0
        ex["position_ids"][slots] = within
        return ex

    __getitem__ = example


class DocumentExamples:
    """One document (``unit="document"``) or sentence (``unit="sentence"``) per example,
    between ``prefix`` and ``suffix`` ([CLS] ... [SEP] by default) and padded; a longer
    one becomes several consecutive examples (counted in ``num_chunked``)."""

    def __init__(self, corpus: Corpus, seq_len: int, *, unit: str = "document",
                 prefix: tuple[int, ...] | None = None, suffix: tuple[int, ...] | None = None,
                 pad_id: int | None = None):
        if unit not in ("document", "sentence"):
            raise DataError(f"unit must be 'document' or 'sentence', got {unit!r}")
        self.corpus, self.seq_len, self.unit = corpus, int(seq_len), unit
        if prefix is None:
            start = special_id(corpus, "cls", "bos")
            prefix = () if start is None else (start,)
        if suffix is None:
            end = special_id(corpus, "sep", "eos")
            suffix = () if end is None else (end,)
        self.prefix, self.suffix = tuple(prefix), tuple(suffix)
        self.pad_id = _pad_id(corpus, pad_id)
        self.content = self.seq_len - len(self.prefix) - len(self.suffix)
        if self.content < 1:
            raise DataError(f"seq_len {seq_len} leaves no room for tokens between the special tokens")
        offsets = corpus.doc_offsets if unit == "document" else corpus.sent_offsets
        lengths = np.diff(offsets)
        keep = lengths > 0
        self.starts, self.lengths = offsets[:-1][keep], lengths[keep]
        chunks = -(-self.lengths // self.content)
        self.num_chunked = int((chunks > 1).sum())
        self.cum = np.concatenate([[0], np.cumsum(chunks)])
        if self.cum[-1] == 0:
            raise DataError(f"{corpus.path} holds no tokens; nothing to train on")

    def __len__(self) -> int:
        return int(self.cum[-1])

    def example(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise DataError(f"example {index} is outside 0..{len(self) - 1}")
        u = int(np.searchsorted(self.cum, index, side="right")) - 1
        j = index - int(self.cum[u])
        a = int(self.starts[u]) + j * self.content
        b = min(a + self.content, int(self.starts[u] + self.lengths[u]))
        ex = empty_example(self.seq_len, self.pad_id)
        p, n = len(self.prefix), b - a
        ex["input_ids"][:p] = self.prefix
        ex["input_ids"][p:p + n] = self.corpus.tokens(a, b)
        ex["input_ids"][p + n:p + n + len(self.suffix)] = self.suffix
        ex["word_starts"][p:p + n] = self.corpus.word_starts(a, b)
        ex["special_tokens_mask"][p:p + n] = False
        ex["sentence_starts"][p:p + n] = sentence_starts(self.corpus, np.arange(a, b))
        total = p + n + len(self.suffix)
        ex["attention_mask"][:total] = True
        ex["doc_ids"][:total] = 0
        ex["position_ids"][:total] = np.arange(total)
        mark_entities(ex, self.corpus, np.arange(a, b), np.arange(p, p + n))
        return ex

    __getitem__ = example
