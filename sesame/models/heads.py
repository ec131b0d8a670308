"""Output heads, small and separate from bodies. A head declares which of its
weights are tied to the input embedding; the model ties and checks them."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.config.registry import get, register
from sesame.nn.feedforward import activation
from sesame.nn.norms import build_norm

EMBEDDING = "body.embed.tokens.weight"


class Head(nn.Module):
    """``forward(hidden, pooled) -> tensor``. ``tied`` maps own weight names to model keys."""

    tied: dict[str, str] = {}
    token_level = False  # True: one output per position (may be computed on selected positions)


def _select(hidden: torch.Tensor, select: torch.Tensor | None) -> torch.Tensor:
    """Keep only the positions an objective scores (saves the vocabulary matmul elsewhere)."""
    return hidden if select is None else hidden[select]


@register("head", "mlm")
class MLMHead(Head):
    """transform (dense, activation, norm) then a decoder tied to the embedding."""

    token_level = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        e = config.embed_dim
        self.dense = nn.Linear(config.hidden, e)
        self.act = activation(config.activation)
        self.norm = build_norm(config.norm, e, config.norm_eps)
        self.decoder = nn.Linear(e, config.vocab_size)
        self.tied = {"decoder.weight": EMBEDDING} if config.tie_embeddings else {}

    def forward(self, hidden, pooled=None, select=None):
        return self.decoder(self.norm(self.act(self.dense(_select(hidden, select)))))


@register("head", "lm")
class LMHead(Head):
    """Next-token logits, tied to the input embedding unless told otherwise."""

    token_level = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.decoder = nn.Linear(config.hidden, config.vocab_size, bias=config.lm_head_bias)
        tie = config.tie_embeddings and config.embed_dim == config.hidden
        self.tied = {"decoder.weight": EMBEDDING} if tie else {}

    def forward(self, hidden, pooled=None, select=None):
        return self.decoder(_select(hidden, select))


@register("head", "pooler")
class Pooler(Head):
    """dense + tanh over the first token: the sentence vector of BERT-style models."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden, config.hidden)
        self.index = -1 if config.pool_last else 0  # XLNet's classification token comes last

    def forward(self, hidden, pooled=None, select=None):
        return torch.tanh(self.dense(hidden[:, self.index]))


class PairHead(Head):
    """Two-way classifier on the pooled vector (NSP, SOP)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.classifier = nn.Linear(config.hidden, 2)

    def forward(self, hidden, pooled=None, select=None):
        return self.classifier(pooled if pooled is not None else hidden[:, 0])


register("head", "nsp")(PairHead)
register("head", "sop")(PairHead)


@register("head", "classify")
class ClassifyHead(Head):
    """Sequence classification on the pooled vector (or the first token without a pooler)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.drop = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden, config.num_labels)

    def forward(self, hidden, pooled=None, select=None):
        return self.classifier(self.drop(pooled if pooled is not None else hidden[:, 0]))


@register("head", "rtd")
class ReplacedTokenHead(Head):
    """ELECTRA's discriminator: one logit per token, 'was this token replaced?'."""

    token_level = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden, config.hidden)
        self.act = activation(config.activation)
        self.out = nn.Linear(config.hidden, 1)

    def forward(self, hidden, pooled=None, select=None):
        return self.out(self.act(self.dense(_select(hidden, select)))).squeeze(-1)


def build_head(name: str, config: ModelConfig) -> Head:
    return get("head", name)(config)
