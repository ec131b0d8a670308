"""Transformer-XL's relative attention (Dai et al., 2019): a kernel that owns its score.

    score_ij = (q_i + u) . k_j                    content, with the global content bias u
             + (q_i + v) . W_kR R_(i - j)         position, with the global position bias v
             [+ (q_i + b) . s_(same or other)]    XLNet's relative segment term

R_d is the sinusoidal code of the distance d between query i (indexed among all the
keys, memory included: the queries are the last Tq keys) and key j. The position term
is computed once per distance, over the Tk + Tq distances Tk, ..., -(Tq - 1), and moved
into place by the relative shift (``rel_shift``). The content term is ordinary
attention of (q + u) against k, so the position and segment terms ride along as an
additive bias and the normal path runs on ``scaled_dot_product_attention``; the map
path is the dense reference with the same bias. ``u``, ``v``, ``W_kR`` (and the
segment vectors) belong to each layer."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn.attention.full import FullAttention
from sesame.nn.attention.kernel import Kernel
from sesame.nn.layout import FEATURES, Layout
from sesame.nn.positions import sinusoid


def rel_shift(x: torch.Tensor, klen: int) -> torch.Tensor:
    """(B, H, Tq, L) scores over distances L-1+... (column c = distance Tk - c) to (B, H, Tq, Tk)
    scores per key: out[..., i, j] = x[..., i, j + Tq - i] (distance q_offset + i - j)."""
    b, h, tq, n = x.shape
    return x.reshape(b, h, n, tq)[:, :, 1:].reshape(b, h, tq, n - 1)[..., :klen]


@register("attention", "xl")
class XLAttention(Kernel):
    name = "xl"
    supports = frozenset(FEATURES) - {"global", "cross"}  # through the dense mask of the full kernel

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        if config is None:
            raise ConfigError("the xl kernel owns parameters sized by the model config; build it through "
                              "model.attention = 'xl'")
        super().__init__(scale, dropout, config, layer)
        if config.kv_heads != config.num_heads:
            raise ConfigError("model.attention = 'xl' does not take grouped-query attention; "
                              "leave model.num_kv_heads unset")
        h, d, std = config.num_heads, config.dim_per_head, config.init_std
        self.hidden, self.clamp = config.hidden, config.clamp_len
        self.r = nn.Linear(config.hidden, h * d, bias=False)  # W_kR
        self.u = nn.Parameter(torch.randn(h, d) * std)  # content bias
        self.v = nn.Parameter(torch.randn(h, d) * std)  # position bias
        self.segment = self.segment_bias = None
        if config.relative_segments:  # XLNet: s+ (same segment) and s- (different), with a bias
            self.segment = nn.Parameter(torch.randn(2, h, d) * std)
            self.segment_bias = nn.Parameter(torch.randn(h, d) * std)
        self.full = FullAttention(scale, dropout)

    def distances(self, tq: int, tk: int, device) -> torch.Tensor:
        dist = torch.arange(tk, -tq, -1, device=device)
        return dist.clamp(-self.clamp, self.clamp) if self.clamp > 0 else dist  # clipped before any negation

    def _position_term(self, q: torch.Tensor, dist: torch.Tensor, tk: int) -> torch.Tensor:
        """(q + v) . W_kR R_(i - j), from the codes of the distances ``dist``, shifted into place."""
        h, d = q.shape[1], q.shape[3]
        code = sinusoid(dist, self.hidden).to(q.dtype)  # (L, hidden)
        rk = self.r(code).view(-1, h, d).transpose(0, 1)  # (H, L, D)
        return rel_shift(torch.matmul(q + self.v[:, None].to(q.dtype), rk.transpose(-1, -2)), tk)

    def score_bias(self, q: torch.Tensor, tk: int, layout: Layout) -> torch.Tensor:
        """The position (and segment) terms, scaled: (B, H, Tq, Tk)."""
        b, h, tq, d = q.shape
        dist = self.distances(tq, tk, q.device)
        out = self._position_term(q, dist, tk)
        if layout.backward is not None:  # bi_data: the backward stream's rows see distances negated
            back = self._position_term(q, -dist, tk)
            out = torch.where(layout.backward.to(q.device)[:, None, None, None], back, out)
        if self.segment is not None and layout.segments is not None:
            seg = layout.segments.to(q.device)
            other = (seg[:, -tq:, None] != seg[:, None, :])[:, None]  # (B, 1, Tq, Tk)
            ef = torch.einsum("bhid,shd->bhis", q + self.segment_bias[:, None].to(q.dtype), self.segment.to(q.dtype))
            out = out + torch.where(other, ef[..., 1:], ef[..., :1])
        return out * self.scale

    def _inputs(self, q, k, layout, bias):
        pos = self.score_bias(q, k.shape[2], layout)
        return q + self.u[:, None].to(q.dtype), pos if bias is None else pos + bias

    def forward(self, q, k, v, layout: Layout, bias: torch.Tensor | None = None):
        qc, total = self._inputs(q, k, layout, bias)
        return self.full(qc, k, v, layout, total)

    def attend_with_map(self, q, k, v, layout, bias=None):
        qc, total = self._inputs(q, k, layout, bias)
        return self.full.attend_with_map(qc, k, v, layout, total)
