"""GloVe's co-occurrence matrix, counted in bounded memory.

A pair of words at distance d (1 <= d <= window, same document) adds 1/d to X[i, j] and
to X[j, i]. Entries are collected per chunk, summed in memory up to ``buffer`` entries,
then split by row into ``shards`` files on disk; each shard is finally summed on its own,
so memory holds one buffer or one shard, never every pair of the corpus."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import numpy as np


def window_pairs(ids: np.ndarray, doc: np.ndarray, window: int):
    """(rows, cols, weights) of one chunk, both directions, weight 1 / distance."""
    rows, cols, wts = [], [], []
    for d in range(1, min(window, len(ids) - 1) + 1):
        same = doc[:-d] == doc[d:]
        a, b = ids[:-d][same].astype(np.int64), ids[d:][same].astype(np.int64)
        w = np.full(len(a), 1.0 / d)
        rows += [a, b]
        cols += [b, a]
        wts += [w, w]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(wts)


def _reduce(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=vals, minlength=len(uniq))


class Cooccurrence:
    """Sums co-occurrence entries into row shards under ``workdir``."""

    def __init__(self, vocab_size: int, workdir: Path, buffer: int = 20_000_000, shards: int = 8):
        self.v, self.buffer, self.shards = vocab_size, buffer, shards
        self.dir = Path(workdir)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.keys: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.held = 0
        self.flushes = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> None:
        keys, vals = _reduce(rows * self.v + cols, weights)
        self.keys.append(keys)
        self.vals.append(vals)
        self.held += len(keys)
        if self.held >= self.buffer:
            self.flush()

    def flush(self) -> None:
        if not self.keys:
            return
        keys, vals = _reduce(np.concatenate(self.keys), np.concatenate(self.vals))
        shard = (keys // self.v) % self.shards
        for s in range(self.shards):
            sel = shard == s
            np.save(self.dir / f"shard{s:03d}-{self.flushes:05d}-keys.npy", keys[sel])
            np.save(self.dir / f"shard{s:03d}-{self.flushes:05d}-vals.npy", vals[sel])
        self.flushes += 1
        self.keys, self.vals, self.held = [], [], 0

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows int64, cols int64, counts float64) of every non-zero entry; removes the shards."""
        self.flush()
        rows, cols, vals = [], [], []
        for s in range(self.shards):
            parts = sorted(self.dir.glob(f"shard{s:03d}-*-keys.npy"))
            if not parts:
                continue
            keys, v = _reduce(np.concatenate([np.load(p) for p in parts]),
                              np.concatenate([np.load(str(p).replace("-keys", "-vals")) for p in parts]))
            rows.append(keys // self.v)
            cols.append(keys % self.v)
            vals.append(v)
        shutil.rmtree(self.dir)
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def count_cooccurrences(chunks: Iterable[tuple[np.ndarray, np.ndarray]], vocab_size: int, window: int,
                        workdir: Path, buffer: int = 20_000_000, shards: int = 8):
    """The co-occurrence matrix of (ids, doc) chunks, as (rows, cols, counts)."""
    counter = Cooccurrence(vocab_size, workdir, buffer, shards)
    for ids, doc in chunks:
        counter.add(*window_pairs(ids, doc, window))
    return counter.finish()
