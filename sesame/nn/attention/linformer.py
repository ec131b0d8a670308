"""Linformer (Wang et al., 2020): keys and values projected along the sequence to
k rows by learned E, F (k × max_length), then softmax attention over those k:
memory O(T·k) instead of O(T²).

Every projected key mixes every position, so it cannot be causal (refused at
build). Padded keys and values are zeroed before the projection, so right
padding never changes the real tokens' outputs. ``share``: ``none`` (one E and
one F per layer, shared by the heads), ``headwise`` (one pair per key/value
head) or ``kv`` (one matrix for keys and values). With k = T and E = F = I it is
exactly softmax attention. The effective map is P·F (P the k-column softmax),
whose rows need not sum to 1."""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError, ShapeError
from sesame.nn.attention.kernel import AttentionMap, Kernel
from sesame.nn.attention.linear import NO_DENSE, key_keep
from sesame.nn.layout import Layout


@dataclasses.dataclass
class LinformerOptions(Section):
    """``k``: projected length; ``share``: none | headwise | kv; ``max_length``: the
    longest sequence (0: model.max_positions)."""

    k: int = 256
    share: str = "none"
    max_length: int = 0

    def validate(self) -> None:
        choice("model.attention_options.share", self.share, ("none", "headwise", "kv"))
        if self.k <= 0 or self.max_length < 0:
            raise ConfigError("model.attention_options: linformer needs k > 0 and max_length >= 0")


@register("attention", "linformer")
class LinformerAttention(Kernel):
    name = "linformer"
    supports = frozenset({"padding"})
    reasons = dict(NO_DENSE, causal="Linformer projects keys along the whole sequence, so every key "
                   "mixes future tokens; use linear, performer or longformer for decoders",
                   cross="its projections are sized for the self-attention length")
    Options = LinformerOptions

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        super().__init__(scale, dropout, config, layer)
        if config is None:
            raise ConfigError("the linformer kernel is built from a model config (its lengths)")
        self.length = self.opts.max_length or config.max_positions
        heads = config.kv_heads if self.opts.share == "headwise" else 1
        std = math.sqrt(2.0 / (self.opts.k + self.length))
        self.E = nn.Parameter(torch.randn(heads, self.opts.k, self.length) * std)
        self.F = None if self.opts.share == "kv" else nn.Parameter(torch.randn(heads, self.opts.k, self.length) * std)

    def _project(self, k, v, layout):
        t = k.shape[2]
        if t > self.length:
            raise ShapeError(f"linformer attention was built for at most {self.length} tokens, got {t}; "
                             "raise model.attention_options.max_length (or model.max_positions)")
        e = self.E[..., :t].to(k.dtype)
        f = e if self.F is None else self.F[..., :t].to(v.dtype)
        keep = key_keep(layout, t)
        if keep is not None:
            k, v = k * keep.to(k.dtype), v * keep.to(v.dtype)
            f = f * keep[:, :, :, 0][:, :, None, :].to(f.dtype)  # (B, 1, 1, T): padded columns play no part
        return e @ k, f @ v, f

    def forward(self, q, k, v, layout: Layout, bias=None):
        self.require(layout)
        if bias is not None:
            self.check({"bias"})
        kp, vp, _ = self._project(k, v, layout)
        drop = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, kp, vp, dropout_p=drop, scale=self.scale,
                                              enable_gqa=q.shape[1] != k.shape[1])

    def attend_with_map(self, q, k, v, layout, bias=None, **_):
        self.require(layout)
        kp, vp, f = self._project(k, v, layout)
        f = f if f.dim() == 4 else f[None]
        if kp.shape[1] != q.shape[1]:
            rep = q.shape[1] // kp.shape[1]
            kp, vp = kp.repeat_interleave(rep, 1), vp.repeat_interleave(rep, 1)
            f = f.repeat_interleave(rep, 1) if f.shape[1] > 1 else f
        scores = (q @ kp.transpose(-1, -2)).float() * self.scale
        p = torch.softmax(scores, -1)
        out = p.to(vp.dtype) @ vp
        return out, AttentionMap((p @ f.float()).to(q.dtype), None)
