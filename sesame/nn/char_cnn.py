"""ELMo's character-CNN token encoder (Peters et al. 2018; Kim et al. 2016): each token's
UTF-8 bytes between begin/end-of-word marks are embedded, convolved with filters of
several widths (max-pooled over the characters), passed through highway layers and
projected to the LSTM width.

Our addition, not in Peters et al.: a LayerNorm after the projection. The max-pooled
ReLU and highway outputs are unnormalised, and under Adam the projection's output grew
without bound (norms in the hundreds within 100 steps at lr 1e-2), saturating the LSTM so
that every token got nearly the same vector (docs/elmo.md). Initialisation follows TF
ELMo (bilm-tf): normal weights with std sqrt(1 / fan_in), zero biases, highway gates
biased to carry.

The token -> characters table is built once from the tokenizer's vocabulary
(``char_table``) and kept as a buffer, so a model directory carries it; the CNN runs on
the distinct tokens of a batch only."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sesame.errors import ConfigError

PAD, BOW, EOW = 0, 257, 258  # byte b is id b + 1
CHAR_VOCAB = 260


def char_table(tokens: Sequence[str], max_chars: int) -> torch.Tensor:
    """(V, max_chars) ids: BOW, the token's UTF-8 bytes (cut to fit), EOW, padding."""
    out = torch.full((len(tokens), max_chars), PAD, dtype=torch.long)
    for i, tok in enumerate(tokens):
        data = list(tok.encode("utf-8"))[: max_chars - 2]
        row = [BOW, *(b + 1 for b in data), EOW]
        out[i, : len(row)] = torch.tensor(row)
    return out


class Highway(nn.Module):
    """``g * relu(W x) + (1 - g) * x`` with ``g = sigmoid(W_g x + b_g)`` (Srivastava et al.
    2015); ``b_g`` starts at -2 (g ~ 0.12, as TF ELMo), so each layer starts by carrying ``x``."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(layers))

    def reset_parameters(self) -> None:
        for layer in self.layers:
            dim = layer.out_features // 2
            nn.init.normal_(layer.weight, 0.0, (1.0 / dim) ** 0.5)
            nn.init.zeros_(layer.bias)
            nn.init.constant_(layer.bias[dim:], -2.0)  # transform gate g: small, so x is carried

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h, g = layer(x).chunk(2, dim=-1)
            g = torch.sigmoid(g)
            x = g * F.relu(h) + (1 - g) * x
        return x


class CharCNN(nn.Module):
    """token ids (B, T) -> (B, T, out_dim) through the vocabulary's character table."""

    def __init__(self, vocab_size: int, char_dim: int, filters: Sequence[Sequence[int]], highway: int,
                 out_dim: int, max_chars: int):
        super().__init__()
        widths = [int(w) for w, _ in filters]
        if max(widths) > max_chars:
            raise ConfigError(f"a character filter of width {max(widths)} is wider than model.max_characters = "
                              f"{max_chars}")
        self.register_buffer("chars", torch.zeros(vocab_size, max_chars, dtype=torch.long))
        self.chars_ready: torch.Tensor
        self.register_buffer("chars_ready", torch.zeros((), dtype=torch.long))
        self.embed = nn.Embedding(CHAR_VOCAB, char_dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, int(n), int(w)) for w, n in filters)
        total = sum(int(n) for _, n in filters)
        self.highway = Highway(total, highway)
        self.proj = nn.Linear(total, out_dim)
        self.norm = nn.LayerNorm(out_dim)  # ours: keeps the LSTM inputs bounded (module docstring)

    def set_vocabulary(self, tokens: Sequence[str]) -> None:
        """Fill the character table from the tokenizer's tokens, in id order."""
        if len(tokens) > self.chars.shape[0]:
            raise ConfigError(f"{len(tokens)} tokens but the character table has {self.chars.shape[0]} rows")
        self.chars.zero_()
        self.chars[: len(tokens)] = char_table(tokens, self.chars.shape[1]).to(self.chars.device)
        self.chars_ready.fill_(1)

    def reset_parameters(self) -> None:
        """TF ELMo's scheme: characters U(-1, 1), convolutions and projection N(0, 1 / fan_in),
        zero biases; the highway as in ``Highway``; the norm the identity."""
        nn.init.uniform_(self.embed.weight, -1.0, 1.0)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        for conv in self.convs:
            nn.init.normal_(conv.weight, 0.0, (1.0 / (conv.in_channels * conv.kernel_size[0])) ** 0.5)
            nn.init.zeros_(conv.bias)
        self.highway.reset_parameters()
        nn.init.normal_(self.proj.weight, 0.0, (1.0 / self.proj.in_features) ** 0.5)
        nn.init.zeros_(self.proj.bias)
        self.norm.reset_parameters()

    def encode_tokens(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, max_chars) character ids -> (N, out_dim)."""
        x = self.embed(rows).transpose(1, 2)  # (N, C, L)
        pooled = [torch.relu(conv(x).max(dim=-1).values) for conv in self.convs]
        return self.norm(self.proj(self.highway(torch.cat(pooled, dim=-1))))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if not int(self.chars_ready):
            raise ConfigError("the character CNN has no character table: build the model through the bilm "
                              "objective (it reads the tokenizer) or call set_vocabulary(tokens)")
        unique, inverse = torch.unique(input_ids, return_inverse=True)
        vecs = self.encode_tokens(self.chars[unique])
        return vecs[inverse]
