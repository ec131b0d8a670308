"""ELMo's scalar mix (Peters et al. 2018, eq. 1): a task-specific weighting of all
layers, ``gamma * sum_j softmax(s)_j * h_j`` over the embedding output and every
block's output. The weights start uniform and ``gamma`` at 1. With ``norm`` each layer is
first layer-normalised over its features (no affine), the paper's remedy when the layers'
scales differ (an ELMo's character layer is far larger than its LSTM states)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sesame.errors import ShapeError


class ScalarMix(nn.Module):
    def __init__(self, count: int, norm: bool = False):
        super().__init__()
        self.norm = norm
        if count < 1:
            raise ShapeError(f"a scalar mix needs at least one layer, got {count}")
        self.scalars = nn.Parameter(torch.zeros(count))
        self.gamma = nn.Parameter(torch.ones(()))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.scalars)
        nn.init.ones_(self.gamma)

    def weights(self) -> torch.Tensor:
        """The normalised layer weights (sum to 1)."""
        return self.scalars.float().softmax(-1)

    def forward(self, states: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        if len(states) != self.scalars.numel():
            raise ShapeError(f"the scalar mix weighs {self.scalars.numel()} layers but got {len(states)} "
                             "hidden states (embeddings + one per block)")
        w = self.weights().to(states[0].dtype)
        if self.norm:
            states = [F.layer_norm(h, h.shape[-1:]) for h in states]
        mixed = torch.einsum("l,l...->...", w, torch.stack(list(states)))
        return self.gamma.to(mixed.dtype) * mixed
