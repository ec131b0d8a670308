"""Multi-head self- and cross-attention with fused projections."""
from __future__ import annotations

import math

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.nn.attention.kernel import build_kernel
from sesame.nn.cache import LayerCache
from sesame.nn.layout import Layout


def _scale(config: ModelConfig) -> float:
    if config.attention_scale is not None:
        return config.attention_scale
    return 1.0 / math.sqrt(config.dim_per_head)


class SelfAttention(nn.Module):
    """q, k, v from one fused projection (grouped-query when num_kv_heads < num_heads)."""

    def __init__(self, config: ModelConfig, needed: set[str] = frozenset(), layer: int = 0):
        super().__init__()
        self.heads, self.kv_heads, self.dim = config.num_heads, config.kv_heads, config.dim_per_head
        self.sizes = [self.heads * self.dim, self.kv_heads * self.dim, self.kv_heads * self.dim]
        self.qkv = nn.Linear(config.hidden, sum(self.sizes), bias=config.bias)
        self.out = nn.Linear(self.heads * self.dim, config.hidden, bias=config.bias)
        self.kernel = build_kernel(config.attention, _scale(config), config.attention_dropout, needed,
                                   config, layer)

    def forward(self, x, layout: Layout, position=None, positions=None, bias=None, cache: LayerCache | None = None,
                maps: list | None = None):
        """``maps``: when a list, this layer's ``AttentionMap`` is appended to it."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(self.sizes, dim=-1)
        q = q.view(b, t, self.heads, self.dim).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        if position is not None and position.hook == "qk":
            q, k = position.rotate(q, k, positions)
        extra = {"x": x} if self.kernel.takes_hidden else {}
        if cache is not None and self.kernel.recurrent:  # the kernel carries its own decoding state
            out = self.kernel.step(q, k, v, layout, cache)
            return self.out(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))
        if cache is not None:
            k, v = cache.update(k, v)
        if maps is None:
            out = self.kernel(q, k, v, layout, bias, **extra)
        else:
            out, amap = self.kernel.attend_with_map(q, k, v, layout, bias, **extra)
            maps.append(amap)
        return self.out(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder's output."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads, self.kv_heads, self.dim = config.num_heads, config.kv_heads, config.dim_per_head
        self.q = nn.Linear(config.hidden, self.heads * self.dim, bias=config.bias)
        self.kv = nn.Linear(config.hidden, 2 * self.kv_heads * self.dim, bias=config.bias)
        self.out = nn.Linear(self.heads * self.dim, config.hidden, bias=config.bias)
        self.kernel = build_kernel(config.attention, _scale(config), config.attention_dropout,
                                   {"padding", "cross"}, config)

    def forward(self, x, memory: torch.Tensor, layout: Layout, cache: LayerCache | None = None):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.dim).transpose(1, 2)
        if cache is not None and cache.cross is not None:
            k, v = cache.cross
        else:
            s = memory.shape[1]
            k, v = self.kv(memory).view(b, s, 2, self.kv_heads, self.dim).permute(2, 0, 3, 1, 4)
            if cache is not None:
                cache.cross = (k, v)
        out = self.kernel(q, k, v, layout)
        return self.out(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))
