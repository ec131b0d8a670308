"""Consecutive segments of long token streams, for recurrent (Transformer-XL) training.

The corpus is laid end to end (each document followed by the separator) and cut into
``streams`` equal contiguous parts, one per batch row, as in Dai et al. Optimizer step
``s`` reads segment ``s mod segments`` of every stream, so each row walks its part of
the corpus in order and a model can carry its memory from one step to the next. A
batch is a pure function of the step: resuming jumps to it in O(1).

A batch (or one part of it, for accumulation and data parallelism: the rows are split
into ``micro_batches * world`` equal groups of streams) holds ``input_ids`` (B, T),
``targets`` (B, T) (the next token of each, across segment boundaries), ``stream``
(B,) the rows' stream numbers, and ``segment``, the segment index (0 starts a stream
afresh: the memory is empty)."""
from __future__ import annotations

import numpy as np

from sesame.data.shards import Corpus
from sesame.data.windows import special_id
from sesame.errors import DataError


def corpus_stream(corpus: Corpus, separator: int | None | str = "auto") -> np.ndarray:
    """Every token of ``corpus``, each document followed by ``separator`` (default [SEP]/</s>)."""
    sep = special_id(corpus, "sep", "eos") if separator == "auto" else separator
    tokens = np.asarray(corpus.tokens(0, corpus.num_tokens), dtype=np.int64)
    if sep is None:
        return tokens
    return np.insert(tokens, np.asarray(corpus.doc_offsets[1:], dtype=np.int64), sep)


class SegmentStreams:
    """A BatchSource (see ``sesame/train/source.py``) of consecutive segments."""

    def __init__(self, tokens: np.ndarray, streams: int, seg_len: int):
        tokens = np.asarray(tokens, dtype=np.int64)
        if streams <= 0 or seg_len <= 0:
            raise DataError("segment streams need streams > 0 and seg_len > 0")
        self.row = (len(tokens) - 1) // streams  # tokens per stream (plus one target beyond)
        self.segments = self.row // seg_len
        if self.segments < 1:
            raise DataError(
                f"{len(tokens):,} tokens cannot give {streams} streams of at least one segment of {seg_len}; "
                "lower train.batch_size or the segment length, or add data"
            )
        self.tokens, self.batch_size, self.seg_len = tokens, streams, seg_len
        self.steps_per_epoch = self.segments
        self.epoch = 0

    def batch(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> dict:
        parts = micro_batches * world
        if self.batch_size % parts:
            raise DataError(f"{self.batch_size} streams cannot be split into {micro_batches} micro-batches x "
                            f"{world} ranks; make train.batch_size a multiple of micro_batch_size x ranks")
        each = self.batch_size // parts
        self.epoch, seg = divmod(step, self.segments)
        first = (rank * micro_batches + micro) * each
        rows = np.arange(first, first + each)
        start = rows * self.row + seg * self.seg_len
        window = self.tokens[start[:, None] + np.arange(self.seg_len + 1)]
        return {"input_ids": window[:, :-1], "targets": window[:, 1:], "stream": rows, "segment": int(seg)}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "tokens": len(self.tokens), "batch_size": self.batch_size,
                "seg_len": self.seg_len}

    def load_state_dict(self, state: dict[str, int]) -> None:
        mine = self.state_dict()
        for key in ("tokens", "batch_size", "seg_len"):
            if state.get(key, mine[key]) != mine[key]:
                raise DataError(f"the checkpoint's segment streams had {key} = {state.get(key)}, these have "
                                f"{mine[key]}; resume with the same data, train.batch_size and segment length")
        self.epoch = int(state.get("epoch", 0))


def stream_sources(corpus: Corpus, seg_len: int, streams: int, eval_streams: int,
                   holdout: float) -> tuple[SegmentStreams, SegmentStreams | None]:
    """Training streams over the corpus and, with ``holdout`` > 0, evaluation streams over
    its last ``holdout`` fraction of tokens (held out, never trained on)."""
    tokens = corpus_stream(corpus)
    n_eval = int(len(tokens) * holdout)
    train = SegmentStreams(tokens[: len(tokens) - n_eval], streams, seg_len)
    evaluation = SegmentStreams(tokens[len(tokens) - n_eval:], eval_streams, seg_len) if n_eval else None
    return train, evaluation
