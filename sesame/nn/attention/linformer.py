"""Linformer (Wang et al., 2020): keys and values projected along the sequence to
k rows by learned E, F (k × max_length), then softmax attention over those k:
memory O(T·k) instead of O(T²).

Every projected key mixes every position, so it cannot be causal (refused at
build). Padded keys and values are zeroed before the projection, so right
padding never changes the real tokens' outputs. ``share``, the paper's levels
(§4): ``none`` (a pair E, F per key/value head), ``heads`` (one pair per layer,
shared by its heads: the default), ``kv`` (one matrix per layer, E = F) and
``layers`` (one matrix for keys and values of every head of every layer). With
``layers`` the matrix is a parameter of layer 0's kernel only, and the other
layers' kernels read it through ``share_with`` (a reference, not a submodule),
so the module tree and ``model.safetensors`` hold it once and a checkpoint
round-trips. With k = T and E = F = I it is exactly softmax attention. The
effective map is P·F (P the k-column softmax), whose rows need not sum to 1."""
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


SHARING = ("none", "heads", "kv", "layers")


@dataclasses.dataclass
class LinformerOptions(Section):
    """``k``: projected length; ``share``: none | heads | kv | layers (see the module
    doc); ``max_length``: the longest sequence (0: model.max_positions)."""

    k: int = 256
    share: str = "heads"
    max_length: int = 0

    def validate(self) -> None:
        choice("model.attention_options.share", self.share, SHARING)
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
        share = self.opts.share
        heads = config.kv_heads if share == "none" else 1
        std = math.sqrt(2.0 / (self.opts.k + self.length))
        own = share != "layers" or layer == 0
        self.E = nn.Parameter(torch.randn(heads, self.opts.k, self.length) * std) if own else None
        two = share in ("none", "heads")
        self.F = nn.Parameter(torch.randn(heads, self.opts.k, self.length) * std) if two else None
        self.model_wide = ("E",) if share == "layers" else ()
        self._source: list[LinformerAttention] = []  # layer 0's kernel, for share = "layers"

    def share_with(self, first: Kernel) -> None:
        """Read layer 0's projection (share = "layers"); kept in a list, so it is no submodule."""
        if self.E is None:
            self._source[:] = [first]

    def projections(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(E, F) as used: F is E when keys and values share, and both are layer 0's with "layers"."""
        e = self.E if self.E is not None else self._source[0].E
        return e, e if self.F is None else self.F

    def _project(self, k, v, layout):
        t = k.shape[2]
        if t > self.length:
            raise ShapeError(f"linformer attention was built for at most {self.length} tokens, got {t}; "
                             "raise model.attention_options.max_length (or model.max_positions)")
        e_all, f_all = self.projections()
        e, f = e_all[..., :t].to(k.dtype), f_all[..., :t].to(v.dtype)
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
