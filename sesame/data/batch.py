"""Batches: examples collated into arrays, in a resumable, rank-sharded order."""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np

from sesame.config.data import DataConfig
from sesame.data.pairs import SentencePairs
from sesame.data.sampler import Sampler
from sesame.data.shards import Corpus
from sesame.data.windows import DocumentExamples, PackedWindows
from sesame.errors import DataError


class Dataset(Protocol):
    def __len__(self) -> int: ...
    def example(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]: ...


def collate(examples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack examples field by field: (B, seq_len) arrays, (B,) for scalar labels."""
    if not examples:
        raise DataError("cannot collate an empty batch")
    return {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}


class Batches:
    """An endless stream of collated batches of ``batch_size`` examples for one rank.

    ``state_dict()`` is the sampler's position (seed, epoch, index...); after
    ``load_state_dict`` the next batch is the one that would have come next."""

    def __init__(self, dataset: Dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if batch_size <= 0:
            raise DataError("batch_size must be positive")
        self.dataset, self.batch_size = dataset, batch_size
        self.sampler = Sampler(len(dataset), seed=seed, shuffle=shuffle, rank=rank, world_size=world_size)
        if batch_size > len(self.sampler):
            raise DataError(f"batch_size {batch_size} is larger than the {len(self.sampler)} examples this rank "
                            "gets per epoch; lower it or add data")

    @property
    def batches_per_epoch(self) -> int:
        return len(self.sampler) // self.batch_size

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def next(self) -> dict[str, np.ndarray]:
        epoch, indices = self.sampler.take(self.batch_size)
        return collate([self.dataset.example(i, epoch) for i in indices])

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def build_dataset(corpus: Corpus | str, config: DataConfig | None = None, *, seed: int = 0) -> Dataset:
    """The examples ``config.examples`` names over a prepared corpus: ``packed`` windows,
    one ``document`` or ``sentence`` per example, or ``nsp``/``sop`` sentence pairs."""
    cfg = config or DataConfig()
    if not isinstance(corpus, Corpus):
        corpus = Corpus(corpus)
    kind = cfg.examples
    if kind == "packed":
        return PackedWindows(corpus, cfg.seq_len)
    if kind in ("document", "sentence"):
        return DocumentExamples(corpus, cfg.seq_len, unit=kind)
    return SentencePairs(corpus, cfg.seq_len, task=kind, seed=seed)
