"""ELMo's biLSTM stack (Peters et al. 2018): per direction, projected LSTM layers (LSTMP,
``torch.nn.LSTM(proj_size=...)``; none when the cell is as wide as the projection) with
dropout between them and a residual connection from each layer's input to its output
above the first. The backward direction runs the
same stack over each row reversed inside its real length, so padding never enters it.

``forward`` returns, per layer, the forward and backward states (B, T, proj); the
forward state at t has read tokens 0..t, the backward state tokens t..end."""
from __future__ import annotations

import torch
from torch import nn


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each row of (B, T, ...) within its first ``lengths[b]`` positions."""
    if lengths is None:
        return x.flip(1)
    t = x.shape[1]
    pos = torch.arange(t, device=x.device)[None]
    idx = torch.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class Direction(nn.Module):
    """One direction: ``layers`` projected LSTMs of ``cell`` units and ``proj`` outputs."""

    def __init__(self, proj: int, cell: int, layers: int, dropout: float, residual: bool = True):
        super().__init__()
        # a cell as wide as the projection needs none (and runs the fused kernel)
        self.lstms = nn.ModuleList(nn.LSTM(proj, cell, batch_first=True, proj_size=proj if cell != proj else 0)
                                   for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, lstm in enumerate(self.lstms):
            h, _ = lstm(x)
            if self.residual and i > 0:
                h = h + x
            out.append(h)
            x = self.drop(h)
        return out


class BiLSTM(nn.Module):
    def __init__(self, proj: int, cell: int, layers: int, dropout: float, residual: bool = True):
        super().__init__()
        self.forward_stack = Direction(proj, cell, layers, dropout, residual)
        self.backward_stack = Direction(proj, cell, layers, dropout, residual)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        fwd = self.forward_stack(x)
        bwd = [reverse_padded(h, lengths) for h in self.backward_stack(reverse_padded(x, lengths))]
        return list(zip(fwd, bwd))
