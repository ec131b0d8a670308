"""Sentence-pair examples for next-sentence prediction (NSP, BERT) and sentence-order
prediction (SOP, ALBERT).

Consecutive sentences of a document are grouped into segments of at most
``seq_len - 3`` tokens (sentences longer than half of that are cut into pieces). Each
segment gives one example ``[CLS] A [SEP] B [SEP]``, split at a random sentence
boundary. With probability ``prob``: NSP replaces B by a segment of another document
(``next_sentence_label`` 1, else 0); SOP swaps A and B (``sentence_order_label`` 1,
else 0). All randomness comes from (seed, epoch, index).
"""
from __future__ import annotations

import numpy as np

from sesame.data.shards import Corpus
from sesame.data.windows import _pad_id, empty_example, mark_entities, special_id
from sesame.errors import DataError


class SentencePairs:
    def __init__(self, corpus: Corpus, seq_len: int, *, task: str = "nsp", seed: int = 0, prob: float = 0.5,
                 pad_id: int | None = None):
        if task not in ("nsp", "sop"):
            raise DataError(f"sentence-pair task must be 'nsp' or 'sop', got {task!r}")
        self.corpus, self.seq_len, self.task, self.seed, self.prob = corpus, int(seq_len), task, int(seed), prob
        self.cls = special_id(corpus, "cls", "bos")
        self.sep = special_id(corpus, "sep", "eos")
        if self.cls is None or self.sep is None:
            raise DataError("sentence pairs need [CLS]/[SEP] (or <s>/</s>) tokens in the vocabulary")
        self.pad_id = _pad_id(corpus, pad_id)
        self.content = self.seq_len - 3
        if self.content < 2:
            raise DataError(f"seq_len {seq_len} is too short for a sentence pair")
        self._build()

    def _build(self) -> None:
        c = self.corpus
        half = max(1, self.content // 2)
        s_start, s_len = c.sent_offsets[:-1], np.diff(c.sent_offsets)
        keep = s_len > 0
        s_start, s_len = s_start[keep], s_len[keep]
        pieces = -(-s_len // half)  # cut long sentences into pieces of <= half
        unit_start = np.repeat(s_start, pieces) + (np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces,
                                                                                        pieces)) * half
        unit_end = np.minimum(unit_start + half, np.repeat(s_start + s_len, pieces))
        unit_doc = np.searchsorted(c.doc_offsets, unit_start, side="right") - 1
        seg_lo, seg_hi = [], []
        lo, total = 0, 0
        ustart, uend, udoc = unit_start.tolist(), unit_end.tolist(), unit_doc.tolist()
        for u in range(len(ustart)):
            n = uend[u] - ustart[u]
            if u > lo and (udoc[u] != udoc[lo] or total + n > self.content):
                seg_lo.append(lo)
                seg_hi.append(u)
                lo, total = u, 0
            total += n
        if ustart:
            seg_lo.append(lo)
            seg_hi.append(len(ustart))
        self.unit_start, self.unit_end = unit_start, unit_end
        lo_a, hi_a = np.array(seg_lo, dtype=np.int64), np.array(seg_hi, dtype=np.int64)
        start = unit_start[lo_a] if len(lo_a) else np.zeros(0, np.int64)
        end = unit_end[hi_a - 1] if len(hi_a) else np.zeros(0, np.int64)
        ok = end - start >= 2
        self.seg_lo, self.seg_hi, self.seg_start, self.seg_end = lo_a[ok], hi_a[ok], start[ok], end[ok]
        self.seg_doc = unit_doc[self.seg_lo] if len(self.seg_lo) else np.zeros(0, np.int64)
        if not len(self.seg_lo):
            raise DataError(f"{c.path} has no sentence of two or more tokens to make pairs from")
        if self.task == "nsp" and len(np.unique(self.seg_doc)) < 2:
            raise DataError("next-sentence prediction needs at least two documents (random segments come "
                            "from another document)")

    def __len__(self) -> int:
        return len(self.seg_lo)

    def _split(self, i: int, rng: np.random.Generator) -> int:
        lo, hi = int(self.seg_lo[i]), int(self.seg_hi[i])
        if hi - lo >= 2:
            return int(self.unit_start[rng.integers(lo + 1, hi)])
        a, b = int(self.seg_start[i]), int(self.seg_end[i])  # one sentence: cut at a word start near the middle
        ws = np.nonzero(self.corpus.word_starts(a + 1, b))[0] + a + 1
        mid = (a + b) // 2
        return int(ws[np.argmin(np.abs(ws - mid))]) if len(ws) else max(a + 1, mid)

    def _other(self, i: int, rng: np.random.Generator) -> int:
        doc = self.seg_doc[i]
        for _ in range(16):
            r = int(rng.integers(len(self)))
            if self.seg_doc[r] != doc:
                return r
        others = np.nonzero(self.seg_doc != doc)[0]
        return int(others[rng.integers(len(others))])

    def plan(self, index: int, epoch: int = 0) -> tuple[int, list[tuple[int, int]]]:
        """(label, [(start, end) of A, (start, end) of B]) in corpus token positions."""
        if not 0 <= index < len(self):
            raise DataError(f"pair {index} is outside 0..{len(self) - 1}")
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch, index])
        a0, b1 = int(self.seg_start[index]), int(self.seg_end[index])
        cut = self._split(index, rng)
        label = int(rng.random() < self.prob)
        ranges = [(a0, cut), (cut, b1)]
        if label and self.task == "sop":
            ranges.reverse()
        elif label:
            r = self._other(index, rng)
            room = self.content - (cut - a0)
            start = int(self.seg_start[r])
            ranges[1] = (start, min(int(self.seg_end[r]), start + room))
        return label, ranges

    def example(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        label, ranges = self.plan(index, epoch)
        ex = empty_example(self.seq_len, self.pad_id)
        ids, pos = ex["input_ids"], 1
        ids[0] = self.cls
        for seg, (a, b) in enumerate(ranges):
            n = b - a
            ids[pos:pos + n] = self.corpus.tokens(a, b)
            ex["word_starts"][pos:pos + n] = self.corpus.word_starts(a, b)
            ex["special_tokens_mask"][pos:pos + n] = False
            mark_entities(ex, self.corpus, np.arange(a, b), np.arange(pos, pos + n))
            ex["token_type_ids"][pos:pos + n + 1] = seg
            ids[pos + n] = self.sep
            pos += n + 1
        ex["attention_mask"][:pos] = True
        ex["doc_ids"][:pos] = 0
        ex["position_ids"][:pos] = np.arange(pos)
        ex["next_sentence_label" if self.task == "nsp" else "sentence_order_label"] = np.int64(label)
        return ex

    __getitem__ = example
