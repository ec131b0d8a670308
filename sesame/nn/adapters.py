"""Bottleneck adapters (Houlsby et al. 2019): a small down-project, activation,
up-project with a residual, inserted after attention and after the
feed-forward. The up-projection starts at zero, so a fresh adapter is the
identity and a pre-trained model's outputs are unchanged until it trains."""
from __future__ import annotations

import torch
from torch import nn

from sesame.nn.feedforward import activation


class Adapter(nn.Module):
    def __init__(self, hidden: int, size: int, act: str = "gelu"):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.act = activation(act)
        self.up = nn.Linear(size, hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.down.weight, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))
