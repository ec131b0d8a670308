"""Where the trainer's raw batches come from.

A ``BatchSource`` addresses batches, it does not iterate them: the raw
micro-batch is a pure function of (seed, step, micro, rank, world), so a resumed
run jumps straight to its step in O(1) and never replays a batch.

Contract of ``batch(step, micro, micro_batches, rank, world)``: the source owns
the *global* batch of optimizer step ``step`` (``batch_size`` examples, summed
over accumulation and ranks). It splits it into ``micro_batches * world`` equal,
disjoint parts and returns part ``rank * micro_batches + micro`` as a dict of
arrays (or lists, for ragged examples) indexed along the first axis. The union
of the parts does not depend on how they are spread over micro-batches and
ranks, so one process with accumulation sees the same data as several ranks.

``state_dict()`` returns a few JSON-able ints (seed, epoch, ...), stored in the
checkpoint's state.json; ``load_state_dict`` restores them (the step itself is
kept by the trainer)."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from sesame.errors import DataError

TRAIN, EVAL = 0, 1  # rng domains


@runtime_checkable
class BatchSource(Protocol):
    batch_size: int  # examples per global batch (optimizer step)

    def batch(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> dict[str, Any]:
        ...

    def state_dict(self) -> dict[str, int]:
        ...

    def load_state_dict(self, state: dict[str, int]) -> None:
        ...


def part_index(micro: int, micro_batches: int, rank: int) -> int:
    """The part of the global batch a (micro, rank) pair gets."""
    return rank * micro_batches + micro


def transform_rng(seed: int, step: int, part: int, domain: int = TRAIN) -> np.random.Generator:
    """The rng handed to ``task.transform``: fixed by (seed, step, part), so masking and other
    random choices are reproduced exactly after a resume, and the same part gets the same rng
    whether it is a micro-batch of one process or the batch of one rank."""
    return np.random.default_rng([seed, domain, step, part])


class ArraySource:
    """A BatchSource over examples held in memory.

    ``examples``: an array (N, ...) (returned under ``key``), a dict of arrays with a shared
    first axis, or a list of dicts (returned as a dict of lists, for ragged examples). Each
    epoch visits the examples in a permutation fixed by (seed, epoch) (``shuffle=False``:
    in order); a trailing remainder smaller than ``batch_size`` is dropped."""

    def __init__(self, examples, batch_size: int, seed: int = 0, shuffle: bool = True,
                 key: str = "input_ids"):
        if isinstance(examples, dict):
            self.columns = {k: v if isinstance(v, list) else np.asarray(v) for k, v in examples.items()}
            self.rows = None
        elif isinstance(examples, (list, tuple)) and examples and isinstance(examples[0], dict):
            self.columns, self.rows = None, list(examples)
        else:
            self.columns, self.rows = {key: np.asarray(examples)}, None
        sizes = {len(v) for v in self.columns.values()} if self.columns else {len(self.rows)}
        if len(sizes) != 1:
            raise DataError(f"the example columns have different lengths: {sorted(sizes)}")
        self.size = sizes.pop()
        if batch_size <= 0 or self.size < batch_size:
            raise DataError(
                f"{self.size} examples cannot fill one batch of {batch_size}; lower train.batch_size "
                "or add data"
            )
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.steps_per_epoch = self.size // batch_size
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            order = (np.random.default_rng([self.seed, epoch]).permutation(self.size) if self.shuffle
                     else np.arange(self.size))
            self._order = (epoch, order)
        return self._order[1]

    def indices(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> np.ndarray:
        parts = micro_batches * world
        if self.batch_size % parts:
            raise DataError(
                f"a batch of {self.batch_size} cannot be split into {micro_batches} micro-batches x "
                f"{world} ranks; make train.batch_size a multiple of micro_batch_size x ranks"
            )
        epoch, pos = divmod(step, self.steps_per_epoch)
        self.epoch = epoch
        each = self.batch_size // parts
        start = pos * self.batch_size + part_index(micro, micro_batches, rank) * each
        return self._permutation(epoch)[start:start + each]

    def batch(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> dict[str, Any]:
        idx = self.indices(step, micro, micro_batches, rank, world)
        if self.rows is not None:
            chosen = [self.rows[i] for i in idx]
            return {k: [row[k] for row in chosen] for k in chosen[0]}
        return {k: ([v[i] for i in idx] if isinstance(v, list) else v[idx]) for k, v in self.columns.items()}

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "size": self.size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("size", self.size) != self.size or state.get("batch_size", self.batch_size) != \
                self.batch_size:
            raise DataError(
                f"the checkpoint's data had {state.get('size')} examples in batches of "
                f"{state.get('batch_size')}, this source has {self.size} in batches of {self.batch_size}; "
                "resume with the same data and train.batch_size"
            )
        self.seed = int(state.get("seed", self.seed))
        self.epoch = int(state.get("epoch", 0))
        self._order = None


class DatasetSource(ArraySource):
    """A BatchSource over a data-layer dataset (``len(ds)`` and ``ds.example(index, epoch)``,
    e.g. packed windows or sentence pairs over a prepared corpus). Examples are read lazily
    and collated into arrays; the order is ArraySource's, fixed by (seed, epoch)."""

    def __init__(self, dataset, batch_size: int, seed: int = 0, shuffle: bool = True):
        self.dataset = dataset
        super().__init__(np.arange(len(dataset)), batch_size, seed, shuffle, key="index")

    def batch(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> dict[str, Any]:
        idx = self.indices(step, micro, micro_batches, rank, world)
        examples = [self.dataset.example(int(i), self.epoch) for i in idx]
        return {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}


class Subset:
    """Examples ``start..stop`` of a dataset, as a dataset (a held-out tail, say)."""

    def __init__(self, dataset, start: int, stop: int):
        if not 0 <= start < stop <= len(dataset):
            raise DataError(f"cannot take examples {start}..{stop} of a dataset of {len(dataset)}")
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def example(self, index: int, epoch: int = 0):
        return self.dataset.example(self.start + index, epoch)
