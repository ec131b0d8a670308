"""Multi-process Hogwild for word2vec / fastText: ``workers`` processes train the equal
parts of each chunk at once on vectors in shared memory.

Processes, not threads: the Python part of every batch (ragged gathers, index arithmetic,
the noise draw) holds the GIL. The workers start once per run, forked where the platform
can fork (spawning costs a fresh interpreter and torch import each, seconds against a
chunk's fraction of a second), with both weight matrices moved to shared memory first and
one torch thread each; the parent sends (part, seed, learning rate) and sums the returned losses.

Each worker trains ``batch // workers`` examples per update, so ``batch`` stays the number
of examples in flight at once: the updates of concurrent batches that share a row add up
as within one batch, and CBOW, whose every context row takes the full error, lost its
analogies at 2 x 1,024 in flight (and diverges at 2,048 on one worker). Part j of chunk k
in epoch e draws from (seed, e, k, j); pairs across a part boundary are not formed (as
across chunks); races on a shared row lose an update at worst, so ``workers > 1`` is not
bit-reproducible."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
import torch.multiprocessing as mp

from sesame.static.config import StaticConfig
from sesame.static.corpus import Corpus, Vocab


@dataclasses.dataclass(frozen=True)
class LinearLR:
    """The learning rate a fraction ``f`` into a chunk of ``n`` words that starts ``done``
    words into a run of ``total``: linear from ``lr`` down by ``span``."""

    lr: float
    span: float
    done: int
    n: int
    total: int

    def __call__(self, f: float) -> float:
        return self.lr - self.span * min((self.done + f * self.n) / max(self.total, 1), 1.0)


_WORKER: dict = {}


def _start(cfg: dict, words: list[str], counts: np.ndarray, weights: dict[str, torch.Tensor],
           ids: torch.Tensor, doc_starts: np.ndarray) -> None:
    from sesame.static.word2vec import Word2Vec

    torch.set_num_threads(1)
    model = Word2Vec(StaticConfig.from_dict(cfg), Vocab(words, counts))
    model.input, model.output = weights["input"], weights["output"]  # the parent's shared storage
    _WORKER.update(model=model, ids=ids.numpy(), docs=doc_starts)


def _train_part(p: int, q: int, seed: list[int], lr: LinearLR) -> tuple[float, int]:
    ids, docs = _WORKER["ids"], _WORKER["docs"]
    doc = np.searchsorted(docs, np.arange(p, q), side="right") - 1
    return _WORKER["model"].train_chunk(ids[p:q], doc, np.random.default_rng(seed), lr)


class Hogwild:
    """The worker processes of one run; ``chunk`` trains chunk k of epoch e on all of them."""

    def __init__(self, model, corpus: Corpus, cfg: StaticConfig):
        start = time.perf_counter()
        self.cfg = cfg
        for t in (model.input, model.output):
            t.share_memory_()
        ids = torch.from_numpy(corpus.ids).share_memory_()
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self.pool = mp.get_context(method).Pool(
            cfg.workers, initializer=_start,
            initargs=({**cfg.to_dict(), "batch": max(1, cfg.batch // cfg.workers)}, corpus.vocab.words,
                      corpus.vocab.counts, {"input": model.input, "output": model.output}, ids, corpus.doc_starts))
        self.start_seconds = time.perf_counter() - start

    def chunk(self, a: int, b: int, e: int, k: int, lr: LinearLR) -> tuple[float, int]:
        cuts = np.linspace(a, b, self.cfg.workers + 1).round().astype(int).tolist()
        jobs = [self.pool.apply_async(_train_part, (p, q, [self.cfg.seed, e, k, j], lr))
                for j, (p, q) in enumerate(zip(cuts[:-1], cuts[1:]))]
        done = [job.get() for job in jobs]
        return sum(x[0] for x in done), sum(x[1] for x in done)

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()
