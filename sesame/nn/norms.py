"""Normalisation layers: LayerNorm and RMSNorm."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.registry import get, register


@register("norm", "layernorm")
def layer_norm(dim: int, eps: float) -> nn.Module:
    return nn.LayerNorm(dim, eps=eps)


@register("norm", "rmsnorm")
class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in fp32 (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def build_norm(kind: str, dim: int, eps: float) -> nn.Module:
    return get("norm", kind)(dim, eps)
