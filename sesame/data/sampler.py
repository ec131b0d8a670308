"""Deterministic, resumable example order.

Epoch ``e`` visits the examples in a seeded permutation that is computed pointwise (a
Feistel network over the index bits, cycle-walked into ``range(n)``), so the example
at any (seed, epoch, position) costs O(1) and needs no stored permutation. Rank ``r``
of ``w`` reads positions ``r, r + w, r + 2w, ...``: ranks never overlap. The whole
position is a few integers; restoring it replays nothing.
"""
from __future__ import annotations

import numpy as np

from sesame.errors import DataError

_M64 = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A seeded bijection of ``range(n)``: ``perm(i)`` for an int or an array."""

    def __init__(self, n: int, seed: int = 0, epoch: int = 0, rounds: int = 6):
        if n <= 0:
            raise DataError("a permutation needs at least one element")
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        bits += bits % 2
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        base = np.array([(seed & _M64), (epoch & _M64) ^ 0x9E3779B97F4A7C15], dtype=np.uint64)
        key = _mix(_mix(base[:1]) ^ base[1:])
        self.keys = [_mix(key + np.uint64(r + 1))[0] for r in range(rounds)]

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for k in self.keys:
            left, right = right, left ^ (_mix(right ^ k) & self.mask)
        return (left << self.half) | right

    def __call__(self, i):
        scalar = np.isscalar(i)
        x = np.atleast_1d(np.asarray(i, dtype=np.int64))
        if x.size and (x.min() < 0 or x.max() >= self.n):
            raise DataError(f"index out of range for a permutation of {self.n}")
        y = self._feistel(x.astype(np.uint64))
        out = y >= np.uint64(self.n)
        while out.any():
            y[out] = self._feistel(y[out])
            out = y >= np.uint64(self.n)
        y = y.astype(np.int64)
        return int(y[0]) if scalar else y


class Sampler:
    """The order in which one data-parallel rank reads examples, epoch after epoch.

    Each epoch every rank gets ``size // world_size`` examples (the remainder is left
    out of that epoch; a fresh permutation next epoch leaves out others)."""

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is not in 0..{world_size - 1}")
        if size < world_size:
            raise DataError(f"{size} examples cannot be shared by {world_size} ranks; use more data or fewer ranks")
        self.size, self.seed, self.shuffle = int(size), int(seed), bool(shuffle)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.index = 0  # examples this rank has consumed in the current epoch
        self._perm: Permutation | None = None

    def __len__(self) -> int:
        return self.size // self.world_size

    def example(self, epoch: int, k: int) -> int:
        """Example index that this rank reads at position ``k`` of ``epoch``."""
        g = k * self.world_size + self.rank
        if not self.shuffle:
            return g
        if self._perm is None or self._perm_epoch != epoch:
            self._perm, self._perm_epoch = Permutation(self.size, self.seed, epoch), epoch
        return self._perm(g)

    def take(self, n: int, whole: bool = True) -> tuple[int, list[int]]:
        """The next ``n`` (epoch, example indices) of this rank. With ``whole`` a batch
        never spans two epochs: when fewer than ``n`` remain, the epoch ends early."""
        if n > len(self):
            raise DataError(f"batch of {n} is larger than the {len(self)} examples per rank")
        if self.index + (n if whole else 1) > len(self):
            self.epoch += 1
            self.index = 0
        k = np.arange(self.index, min(self.index + n, len(self)))
        g = k * self.world_size + self.rank
        ids = self._epoch_perm()(g) if self.shuffle else g
        self.index += len(k)
        return self.epoch, [int(i) for i in np.atleast_1d(ids)]

    def _epoch_perm(self) -> Permutation:
        if self._perm is None or self._perm_epoch != self.epoch:
            self._perm, self._perm_epoch = Permutation(self.size, self.seed, self.epoch), self.epoch
        return self._perm

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "index": self.index, "size": self.size,
                "world_size": self.world_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        """Restore a position in O(1). A different world size keeps the number of
        examples consumed across all ranks."""
        if state["size"] != self.size:
            raise DataError(
                f"the saved data position is for {state['size']} examples but this dataset has {self.size}: "
                "the corpus or seq_len changed since the checkpoint; resume with the same data"
            )
        self.seed, self.shuffle, self.epoch = int(state["seed"]), bool(state["shuffle"]), int(state["epoch"])
        consumed = int(state["index"]) * int(state.get("world_size", self.world_size))
        self.index = min(consumed // self.world_size, len(self))
