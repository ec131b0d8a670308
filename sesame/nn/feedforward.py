"""Position-wise feed-forward layers: a two-layer MLP, or a gated linear unit
(GEGLU with gelu, SwiGLU with silu) whose gate and up projections are fused."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.config.registry import get, register

ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


@register("feedforward", "mlp")
class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden, config.intermediate, bias=config.bias)
        self.act = activation(config.activation)
        self.down = nn.Linear(config.intermediate, config.hidden, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(self.act(self.up(x))))


@register("feedforward", "glu")
class GLU(nn.Module):
    """down(act(gate(x)) * up(x)); ``up`` holds [gate; up] in one matrix."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden, 2 * config.intermediate, bias=config.bias)
        self.act = activation(config.activation)
        self.down = nn.Linear(config.intermediate, config.hidden, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)
        return self.drop(self.down(self.act(gate) * up))


def build_feedforward(config: ModelConfig) -> nn.Module:
    return get("feedforward", config.feedforward)(config)
