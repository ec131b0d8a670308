"""The kernel interface: ``kernel(q, k, v, layout, bias) -> out`` with
q (B, H, Tq, D), k/v (B, Hkv, Tk, D), out (B, H, Tq, D). Each kernel declares
the layout features it honours; asking for others fails at build time.

``kernel.attend_with_map(q, k, v, layout, bias) -> (out, AttentionMap)`` is the
slow, explicit path used only when a caller asks for attention maps
(distillation, interpretability); the normal ``forward`` never pays for it.
The base class computes it densely from the layout, which is exact for dense
attention; an approximate kernel overrides it with its own effective map."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sesame.config.registry import get
from sesame.errors import ConfigError


@dataclasses.dataclass
class AttentionMap:
    """One layer's attention: ``probs`` (B, H, Tq, Tk), rows summing to 1 (0 for a
    row that may attend to nothing); ``scores`` the scaled pre-softmax logits
    (bias included, masked entries -inf), or None for kernels without logits."""

    probs: torch.Tensor
    scores: torch.Tensor | None = None


def dense_attention(q, k, v, layout, bias, scale: float, dropout: float = 0.0):
    """Explicit softmax attention with its map: the reference every kernel's map
    is checked against."""
    tq, tk = q.shape[2], k.shape[2]
    if k.shape[1] != q.shape[1]:  # grouped-query: repeat each kv head for its queries
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    if bias is not None:
        scores = scores + bias.float()
    mask = layout.dense(tq, tk, q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a fully masked row gives zeros
    used = nn.functional.dropout(probs, dropout) if dropout else probs
    out = torch.matmul(used.to(v.dtype), v)
    return out, AttentionMap(probs.to(q.dtype), scores)


class Kernel(nn.Module):
    name = "base"
    supports: frozenset[str] = frozenset()

    def __init__(self, scale: float, dropout: float):
        super().__init__()
        self.scale = scale
        self.dropout = dropout

    def attend_with_map(self, q, k, v, layout, bias=None) -> tuple[torch.Tensor, AttentionMap]:
        """(out, map) for callers that ask for attention maps; see the module doc."""
        return dense_attention(q, k, v, layout, bias, self.scale, self.dropout if self.training else 0.0)

    def check(self, needed: set[str]) -> None:
        missing = set(needed) - self.supports
        if missing:
            raise ConfigError(
                f"attention kernel {self.name!r} cannot honour {', '.join(sorted(missing))}; "
                f"it supports {', '.join(sorted(self.supports))}. Choose model.attention = 'full' "
                "or an objective that does not need it"
            )


def build_kernel(name: str, scale: float, dropout: float, needed: set[str] = frozenset(), config=None) -> Kernel:
    """A kernel with ``needs_config = True`` (one that owns parameters, e.g. ``xl``) also gets the model config."""
    cls = get("attention", name)
    if getattr(cls, "needs_config", False):
        if config is None:
            raise ConfigError(f"attention kernel {name!r} cannot serve here (it needs the model config); "
                              "use model.attention = 'full' for this part")
        kernel = cls(scale, dropout, config)
    else:
        kernel = cls(scale, dropout)
    kernel.check(needed)
    return kernel


def masked_fill_value(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min
