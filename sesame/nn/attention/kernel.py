"""The kernel interface: ``kernel(q, k, v, layout, bias) -> out`` with
q (B, H, Tq, D), k/v (B, Hkv, Tk, D), out (B, H, Tq, D). Each kernel declares
the layout features it honours; asking for others fails at build time."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.registry import get
from sesame.errors import ConfigError


class Kernel(nn.Module):
    name = "base"
    supports: frozenset[str] = frozenset()

    def __init__(self, scale: float, dropout: float):
        super().__init__()
        self.scale = scale
        self.dropout = dropout

    def check(self, needed: set[str]) -> None:
        missing = set(needed) - self.supports
        if missing:
            raise ConfigError(
                f"attention kernel {self.name!r} cannot honour {', '.join(sorted(missing))}; "
                f"it supports {', '.join(sorted(self.supports))}. Choose model.attention = 'full' "
                "or an objective that does not need it"
            )


def build_kernel(name: str, scale: float, dropout: float, needed: set[str] = frozenset()) -> Kernel:
    kernel = get("attention", name)(scale, dropout)
    kernel.check(needed)
    return kernel


def masked_fill_value(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min
