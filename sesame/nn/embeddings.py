"""Input embeddings: tokens, optional segment types and absolute positions,
an optional norm, dropout, and ALBERT/ELECTRA's factorised projection E -> H."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.nn.norms import build_norm


class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        e = config.embed_dim
        self.tokens = nn.Embedding(config.vocab_size, e)
        self.types = nn.Embedding(config.type_vocab_size, e) if config.type_vocab_size else None
        self.norm = build_norm(config.norm, e, config.norm_eps) if config.embedding_norm else None
        self.drop = nn.Dropout(config.dropout)
        self.project = nn.Linear(e, config.hidden) if e != config.hidden else None

    def forward(self, input_ids, token_type_ids=None, position_vectors=None, norm=None) -> torch.Tensor:
        """``norm`` replaces the own norm (an encoder-decoder's decoder has its own, BART)."""
        x = self.tokens(input_ids)
        if position_vectors is not None:
            x = x + position_vectors.to(x.dtype)
        if self.types is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.types(token_type_ids)
        norm = self.norm if norm is None else norm
        if norm is not None:
            x = norm(x)
        x = self.drop(x)
        if self.project is not None:
            x = self.project(x)
        return x
