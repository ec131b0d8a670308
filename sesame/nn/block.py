"""A Transformer block (self-attention, optional cross-attention, feed-forward;
pre- or post-norm) and a stack of blocks with optional cross-layer sharing."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.nn.adapters import Adapter
from sesame.nn.attention import CrossAttention, SelfAttention
from sesame.nn.cache import KVCache
from sesame.nn.feedforward import build_feedforward
from sesame.nn.layout import Layout
from sesame.nn.norms import build_norm
from sesame.nn.reversible import reversible_stack


@dataclasses.dataclass
class Context:
    """Per-forward inputs every block shares; built once by the body."""

    layout: Layout
    position: nn.Module | None = None
    positions: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    memory: torch.Tensor | None = None  # encoder output, for cross-attention
    memory_layout: Layout | None = None
    attentions: list | None = None  # when a list, each layer appends its AttentionMap


class Block(nn.Module):
    def __init__(self, config: ModelConfig, cross: bool = False, needed: set[str] = frozenset(), layer: int = 0):
        super().__init__()
        norm = lambda: build_norm(config.norm, config.hidden, config.norm_eps)  # noqa: E731
        self.prenorm = config.prenorm
        self.attn = SelfAttention(config, needed, layer)
        self.attn_norm = norm()
        self.cross = CrossAttention(config) if cross else None
        self.cross_norm = norm() if cross else None
        self.ffn = build_feedforward(config)
        self.ffn_norm = norm()
        self.drop = nn.Dropout(config.dropout)
        size = config.adapter_size
        self.attn_adapter = Adapter(config.hidden, size, config.activation) if size else None
        self.ffn_adapter = Adapter(config.hidden, size, config.activation) if size else None
        self.ff_chunks = config.ff_chunks

    def chunked_ffn(self, h: torch.Tensor) -> torch.Tensor:
        """The feed-forward over ``ff_chunks`` slices of the sequence (its T × intermediate
        activation never exists whole); one call when ff_chunks <= 1."""
        if self.ff_chunks <= 1 or h.shape[1] <= 1:
            return self.ffn(h)
        return torch.cat([self.ffn(piece) for piece in h.chunk(self.ff_chunks, dim=1)], dim=1)

    # the two residual branches, for reversible stacks (pre-norm, no cross-attention)
    def attn_part(self) -> nn.ModuleList:
        return nn.ModuleList([m for m in (self.attn, self.attn_norm, self.attn_adapter) if m is not None])

    def ffn_part(self) -> nn.ModuleList:
        return nn.ModuleList([m for m in (self.ffn, self.ffn_norm, self.ffn_adapter) if m is not None])

    def attn_branch(self, h: torch.Tensor, ctx: Context, cache=None) -> torch.Tensor:
        out = self.drop(self.attn(self.attn_norm(h), ctx.layout, ctx.position, ctx.positions, ctx.bias, cache,
                                  ctx.attentions))
        return out if self.attn_adapter is None else self.attn_adapter(out)

    def ffn_branch(self, h: torch.Tensor) -> torch.Tensor:
        out = self.chunked_ffn(self.ffn_norm(h))
        return out if self.ffn_adapter is None else self.ffn_adapter(out)

    def forward(self, x: torch.Tensor, ctx: Context, cache=None) -> torch.Tensor:
        def attend(h):
            out = self.drop(self.attn(h, ctx.layout, ctx.position, ctx.positions, ctx.bias, cache,
                                       ctx.attentions))
            return out if self.attn_adapter is None else self.attn_adapter(out)

        def feed(h):
            out = self.chunked_ffn(h)
            return out if self.ffn_adapter is None else self.ffn_adapter(out)

        def cross(h):
            return self.drop(self.cross(h, ctx.memory, ctx.memory_layout, cache))

        if self.prenorm:
            x = x + attend(self.attn_norm(x))
            if self.cross is not None:
                x = x + cross(self.cross_norm(x))
            return x + feed(self.ffn_norm(x))
        x = self.attn_norm(x + attend(x))
        if self.cross is not None:
            x = self.cross_norm(x + cross(x))
        return self.ffn_norm(x + feed(x))


class Stack(nn.ModuleList):
    """``layers`` blocks; with ``share_layers`` one block's weights serve every depth (ALBERT)."""

    def __init__(self, config: ModelConfig, layers: int, cross: bool = False, needed=frozenset()):
        count = 1 if config.share_layers else layers
        super().__init__(Block(config.layer_config(i) if config.head_counts else config, cross, needed, layer=i)
                         for i in range(count))
        for block in list(self)[1:]:  # kernels that share across layers read layer 0's parameters
            block.attn.kernel.share_with(self[0].attn.kernel)
        self.depth = layers
        self.shared = config.share_layers
        self.reversible = config.reversible
        self.layerdrop = config.layerdrop

    def forward(self, x, ctx: Context, cache: KVCache | None = None, hidden_states: list | None = None):
        if self.reversible:
            return reversible_stack(self, x, ctx, cache, hidden_states)
        # LayerDrop: in training each layer is skipped with probability model.layerdrop (one draw per forward)
        drop = (torch.rand(self.depth) < self.layerdrop).tolist() if self.training and self.layerdrop else None
        for i in range(self.depth):
            if drop is not None and drop[i]:
                if hidden_states is not None:
                    hidden_states.append(x)
                continue
            block = self[0 if self.shared else i]
            x = block(x, ctx, cache.layers[i] if cache is not None else None)
            if hidden_states is not None:
                hidden_states.append(x)
        return x
