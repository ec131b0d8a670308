"""Multi-head self- and cross-attention with fused projections."""
from __future__ import annotations

import math

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.nn.attention.kernel import build_kernel, dense_attention
from sesame.nn.cache import LayerCache
from sesame.nn.layout import Layout
from sesame.nn.positions import layer_position


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
        bias = config.bias if config.attention_bias is None else config.attention_bias
        self.qkv = nn.Linear(config.hidden, sum(self.sizes), bias=bias)
        self.out = nn.Linear(self.heads * self.dim, config.hidden, bias=bias)
        self.relative = layer_position(config)  # per-layer relative positions (shaw), or None
        if self.relative is not None:
            needed = set(needed) | {"bias"}
            if self.relative.values is not None and config.attention != "full":
                raise ConfigError("model.relative_values needs the attention probabilities, so "
                                  f"model.attention = 'full'; got {config.attention!r}")
        self.kernel = build_kernel(config.attention, _scale(config), config.attention_dropout, needed,
                                   config, layer)

    def forward(self, x, layout: Layout, position=None, positions=None, bias=None, cache: LayerCache | None = None,
                maps: list | None = None):
        """``maps``: when a list, this layer's ``AttentionMap`` is appended to it."""
        b, t, _ = x.shape
        if cache is not None and getattr(cache, "stores", "kv") == "hidden":  # recurrence memory
            q, k, v = self.project_with_memory(x, cache.extend(x))
            cache = None
        else:
            q, k, v = self.qkv(x).split(self.sizes, dim=-1)
        s = k.shape[1]
        q = q.view(b, t, self.heads, self.dim).transpose(1, 2)
        k = k.view(b, s, self.kv_heads, self.dim).transpose(1, 2)
        v = v.view(b, s, self.kv_heads, self.dim).transpose(1, 2)
        if position is not None and position.hook == "qk":
            q, k = position.rotate(q, k, positions)
        extra = {"x": x} if self.kernel.takes_hidden else {}
        if cache is not None and self.kernel.recurrent:  # the kernel carries its own decoding state
            out = self.kernel.step(q, k, v, layout, cache)
            return self.out(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))
        if cache is not None:
            k, v = cache.update(k, v)
        if self.relative is not None:
            rel = self.relative.score(q, k, self.kernel.scale)
            bias = rel if bias is None else bias + rel
            if self.relative.values is not None:
                return self._with_values(q, k, v, layout, bias, maps, b, t)
        if maps is None:
            out = self.kernel(q, k, v, layout, bias, **extra)
        else:
            out, amap = self.kernel.attend_with_map(q, k, v, layout, bias, **extra)
            amap.values = v if amap.values is None else amap.values  # MiniLM's value relation reads them
            maps.append(amap)
        return self.out(out.transpose(1, 2).reshape(b, t, self.heads * self.dim))

    def project_with_memory(self, x, src):
        """q from the current segment, k and v from [memory; segment]."""
        w, bias = self.qkv.weight, self.qkv.bias
        n = self.sizes[0]
        q = nn.functional.linear(x, w[:n], None if bias is None else bias[:n])
        kv = nn.functional.linear(src, w[n:], None if bias is None else bias[n:])
        k, v = kv.split(self.sizes[1:], dim=-1)
        return q, k, v

    def _with_values(self, q, k, v, layout, bias, maps, b, t):
        """Shaw's value term needs the (dropped-out) probabilities: explicit attention."""
        _, amap = dense_attention(q, k, v, layout, bias, self.kernel.scale)
        if maps is not None:
            maps.append(amap)
        probs = nn.functional.dropout(amap.probs, self.kernel.dropout, self.training)
        if v.shape[1] != q.shape[1]:
            v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
        out = torch.matmul(probs, v) + self.relative.value_term(probs)
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
