"""Heads for downstream tasks: token classification (``tag``), extractive-QA
span boundaries (``span``) and a multiple-choice scorer (``choice``).

Like the heads in ``heads.py`` they are small, separate from the body, and built
from a ``ModelConfig`` (``num_labels`` sizes the tagger)."""
from __future__ import annotations

from torch import nn

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.models.heads import Head, _select


@register("head", "tag")
class TagHead(Head):
    """One score per label for every token (NER, POS): dropout + linear."""

    token_level = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.drop = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_input, config.num_labels)

    def forward(self, hidden, pooled=None, select=None):
        return self.classifier(self.drop(_select(hidden, select)))


@register("head", "span")
class SpanHead(Head):
    """Start and end logits of an answer span: (B, T, 2) over every position."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.boundary = nn.Linear(config.hidden, 2)

    def forward(self, hidden, pooled=None, select=None):
        return self.boundary(hidden)


@register("head", "choice")
class ChoiceHead(Head):
    """One score per (context, option) sequence, from the pooled vector (or the first
    token without a pooler); a softmax over the options of a question picks one."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.drop = nn.Dropout(config.dropout)
        self.scorer = nn.Linear(config.hidden, 1)

    def forward(self, hidden, pooled=None, select=None):
        return self.scorer(self.drop(pooled if pooled is not None else hidden[:, 0])).squeeze(-1)
