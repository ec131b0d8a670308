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

from sesame.config.base import Section
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
    """``Options``: the kernel's ``model.attention_options`` table (strict keys), parsed
    into ``self.opts``; None for a kernel without options. ``reasons``: why a feature
    is unsupported, for the build-time error. ``recurrent``: decoding keeps its own
    state in the cache (``step``) instead of keys and values. ``takes_hidden``: the
    kernel has projections of its own and is also given the layer input ``x``.
    ``model_wide``: names of parameters layer 0's kernel holds for the whole stack
    (the other layers reach them through ``share_with``)."""

    name = "base"
    supports: frozenset[str] = frozenset()
    Options: type[Section] | None = None
    reasons: dict[str, str] = {}
    recurrent = False
    takes_hidden = False
    model_wide: tuple[str, ...] = ()

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        super().__init__()
        self.scale = scale
        self.dropout = dropout
        self.layer = layer
        given = dict(getattr(config, "attention_options", None) or {})
        if self.Options is None:
            if given:
                raise ConfigError(
                    f"model.attention_options {given} was given, but attention kernel {self.name!r} "
                    "takes no options; remove the table or choose a kernel that reads it"
                )
            self.opts = None
        else:
            self.opts = self.Options.from_dict(given, f"model.attention_options ({self.name})")

    def share_with(self, first: "Kernel") -> None:
        """Called on every layer's kernel but layer 0's, with layer 0's, once the stack is built:
        a kernel sharing parameters across layers keeps a reference here (default: nothing)."""

    def require(self, layout) -> None:
        """Refuse, at run time, a layout with features this kernel cannot honour."""
        missing = layout.features() - self.supports
        if missing:
            self.check(missing)

    def attend_with_map(self, q, k, v, layout, bias=None) -> tuple[torch.Tensor, AttentionMap]:
        """(out, map) for callers that ask for attention maps; see the module doc."""
        return dense_attention(q, k, v, layout, bias, self.scale, self.dropout if self.training else 0.0)

    def check(self, needed: set[str]) -> None:
        missing = set(needed) - self.supports
        if missing:
            why = "".join(f" ({self.reasons[m]})" for m in sorted(missing) if m in self.reasons)
            raise ConfigError(
                f"attention kernel {self.name!r} cannot honour {', '.join(sorted(missing))}{why}; "
                f"it supports {', '.join(sorted(self.supports))}. Choose model.attention = 'full' "
                "or an objective that does not need it"
            )


def build_kernel(name: str, scale: float, dropout: float, needed: set[str] = frozenset(),
                 config=None, layer: int = 0) -> Kernel:
    """``config`` (the ModelConfig) and ``layer`` (its depth) reach kernels with options."""
    cls = get("attention", name)
    kernel = cls(scale, dropout) if config is None else cls(scale, dropout, config, layer)
    kernel.check(needed)
    return kernel


def masked_fill_value(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min
