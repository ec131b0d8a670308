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
        self.decoder = nn.Linear(config.hidden, config.vocab_size, bias=config.lm_bias)
        tie = config.tie_embeddings and config.embed_dim == config.hidden
        self.tied = {"decoder.weight": EMBEDDING} if tie else {}
        self.scale = config.hidden ** -0.5 if config.lm_rescale else None

    def forward(self, hidden, pooled=None, select=None):
        hidden = _select(hidden, select)
        return self.decoder(hidden if self.scale is None else hidden * self.scale)


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
    """Sequence classification on the pooled vector (or, without a pooler, the first token;
    the last with ``pool_last``, XLNet)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.drop = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_input, config.num_labels)
        self.index = -1 if config.pool_last else 0

    def forward(self, hidden, pooled=None, select=None):
        return self.classifier(self.drop(pooled if pooled is not None else hidden[:, self.index]))


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


@register("head", "sbo")
class SpanBoundaryHead(Head):
    """SpanBERT's span boundary objective: predict each token of a masked span from the
    outputs at the two boundary tokens and an embedding of its offset in the span
    (offsets past ``MAX_OFFSET - 1`` share the last row): two dense + activation + norm
    layers, then a decoder tied to the input embedding. The objective calls ``predict``
    (``direct``: ``Model.forward`` does not run it)."""

    direct = True
    MAX_OFFSET = 32

    def __init__(self, config: ModelConfig):
        super().__init__()
        h, e = config.hidden, config.embed_dim
        self.offsets = nn.Embedding(self.MAX_OFFSET, h)
        self.act = activation(config.activation)
        self.dense1 = nn.Linear(3 * h, h)
        self.norm1 = build_norm(config.norm, h, config.norm_eps)
        self.dense2 = nn.Linear(h, e)
        self.norm2 = build_norm(config.norm, e, config.norm_eps)
        self.decoder = nn.Linear(e, config.vocab_size)
        self.tied = {"decoder.weight": EMBEDDING} if config.tie_embeddings else {}

    def predict(self, hidden, left, right, offset):
        """hidden (B, T, H); left/right/offset (N,) flat indices into B*T / offsets -> (N, V)."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        pos = self.offsets(offset.clamp(max=self.MAX_OFFSET - 1))
        x = torch.cat([flat[left], flat[right], pos], dim=-1)
        x = self.norm1(self.act(self.dense1(x)))
        return self.decoder(self.norm2(self.act(self.dense2(x))))

    def forward(self, hidden, pooled=None, select=None):
        raise RuntimeError("the sbo head is called through predict(hidden, left, right, offset)")


def build_head(name: str, config: ModelConfig) -> Head:
    return get("head", name)(config)
