"""The decoding cache: per-layer keys and values in buffers that grow by
doubling, so each step writes in place instead of re-concatenating. The same
object carries an encoder-decoder's cross-attention keys (computed once)."""
from __future__ import annotations

import torch

from sesame.errors import ConfigError


class LayerCache:
    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0
        self.cross: tuple[torch.Tensor, torch.Tensor] | None = None
        self.state: dict[str, torch.Tensor] = {}  # a recurrent kernel's decoding state (linear attention)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, H, T, D) keys/values; return all of them so far."""
        t = k.shape[2]
        end = self.length + t
        if self.k is None or end > self.k.shape[2]:
            cap = max(end, 2 * (self.k.shape[2] if self.k is not None else 0), 16)
            shape = (k.shape[0], k.shape[1], cap, k.shape[3])
            nk, nv = k.new_empty(shape), v.new_empty(shape)
            if self.k is not None:
                nk[:, :, : self.length] = self.k[:, :, : self.length]
                nv[:, :, : self.length] = self.v[:, :, : self.length]
            self.k, self.v = nk, nv
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> None:
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)
        if self.cross is not None:
            self.cross = tuple(t.index_select(0, index) for t in self.cross)
        self.state = {name: t.index_select(0, index) for name, t in self.state.items()}


class KVCache:
    """One ``LayerCache`` per layer; ``length`` is how many positions are cached."""

    def __init__(self, layers: int):
        self.layers = [LayerCache() for _ in range(layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows (beam search keeps the surviving hypotheses)."""
        for layer in self.layers:
            layer.reorder(index)


class LayerMemory:
    """Transformer-XL recurrence for one layer: the hidden states this layer took as
    input in earlier segments, detached, the last ``mem_len`` of them. Where a
    ``LayerCache`` stores keys/values, this stores their source: the attention
    projects keys and values from ``[memory; x]`` with the current weights."""

    stores = "hidden"

    def __init__(self, mem_len: int):
        self.mem_len = mem_len
        self.h: torch.Tensor | None = None
        self.cross = None

    @property
    def length(self) -> int:
        return 0 if self.h is None else self.h.shape[1]

    def extend(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, E) layer input -> (B, M + T, E) keys/values source; keep the last mem_len."""
        src = x if self.h is None else torch.cat([self.h.to(x.dtype), x], 1)
        self.h = src[:, -self.mem_len:].detach()
        return src

    def reorder(self, index: torch.Tensor) -> None:
        if self.h is not None:
            self.h = self.h.index_select(0, index)


class Memory(KVCache):
    """Segment recurrence over the cache protocol: pass it where a ``KVCache`` goes
    (``model(ids, cache=memory)``, ``model.step``); each call reads the earlier
    segments and then remembers the current one. ``tensors()``/``load()`` save and
    restore it exactly (safetensors-ready)."""

    def __init__(self, layers: int, mem_len: int):
        if mem_len <= 0:
            raise ConfigError(f"a recurrence memory needs mem_len > 0, got {mem_len}")
        self.mem_len = mem_len
        self.layers = [LayerMemory(mem_len) for _ in range(layers)]

    def tensors(self, prefix: str = "memory") -> dict[str, torch.Tensor]:
        return {f"{prefix}.{i}": m.h.contiguous() for i, m in enumerate(self.layers) if m.h is not None}

    def load(self, tensors: dict[str, torch.Tensor], prefix: str = "memory") -> None:
        for i, m in enumerate(self.layers):
            m.h = tensors.get(f"{prefix}.{i}")
