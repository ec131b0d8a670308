"""Masked language modelling (BERT, RoBERTa, BERT-wwm, ERNIE, SpanBERT): dynamic
masking on the CPU side.

With ``unit = "token"`` each non-special, non-padding token is selected with
probability ``mask_prob``; a selected token becomes ``[MASK]`` with probability
``replace_mask``, a random non-special token with probability ``replace_random``,
and stays itself otherwise. The other units (``word``, ``ngram``, ``entity``,
``span``) select whole groups read from the corpus records and make the decision
per group (objectives/masking.py). Labels are the original tokens at selected
positions and ``-100`` elsewhere. The head is computed only at selected
positions."""
from __future__ import annotations

import dataclasses

import numpy as np
from torch import nn

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import IGNORE, TokenObjective, Vocab, build_shared, scored_loss, to_tensors
from sesame.objectives.masking import UNITS, mask_batch


@dataclasses.dataclass
class MLMOptions(Section):
    """``unit`` picks the grouping (see objectives/masking.py); ``ngram_probs``: P(n = 1, 2, ...)
    for ``ngram``; ``span_p``/``max_span``: SpanBERT's clipped geometric lengths, in words;
    ``stages``: ERNIE's per-sequence mix of token / word / entity masking for ``entity``."""

    mask_prob: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1
    unit: str = "token"
    ngram_probs: list[float] = dataclasses.field(default_factory=lambda: [6 / 11, 3 / 11, 2 / 11])
    span_p: float = 0.2
    max_span: int = 10
    stages: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"token": 1 / 3, "word": 1 / 3, "entity": 1 / 3})

    def validate(self) -> None:
        if not 0 < self.mask_prob < 1:
            raise ConfigError("objective.options.mask_prob must be in (0, 1)")
        if self.replace_mask < 0 or self.replace_random < 0 or self.replace_mask + self.replace_random > 1:
            raise ConfigError("objective.options replace_mask + replace_random must be within [0, 1]")
        choice("objective.options.unit", self.unit, UNITS)
        if not self.ngram_probs or min(self.ngram_probs) < 0 or abs(sum(self.ngram_probs) - 1) > 1e-6:
            raise ConfigError("objective.options.ngram_probs must be non-negative and sum to 1 "
                              "(P(n=1), P(n=2), ...)")
        if not 0 < self.span_p <= 1 or self.max_span < 1:
            raise ConfigError("objective.options.span_p must be in (0, 1] and max_span >= 1")
        bad = [k for k in self.stages if k not in ("token", "word", "entity")]
        if bad or not self.stages or min(self.stages.values()) < 0 or sum(self.stages.values()) <= 0:
            raise ConfigError("objective.options.stages maps 'token', 'word', 'entity' to non-negative "
                              f"proportions with a positive sum; got {self.stages}")


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, opts: MLMOptions, vocab: Vocab,
                word_starts: np.ndarray | None = None, entity_ids: np.ndarray | None = None):
    """(corrupted ids, labels) for an int array of token ids, grouped by ``opts.unit``."""
    batch = {"input_ids": ids, "word_starts": word_starts, "entity_ids": entity_ids}
    out = mask_batch(batch, rng, opts, vocab)
    return out["input_ids"], out["labels"]


@register("objective", "mlm")
class MLM(TokenObjective):
    name = "mlm"
    archs = ("encoder",)
    heads = ("mlm",)
    corrupts = True
    Options = MLMOptions

    def transform(self, batch, rng):
        out = {k: batch[k] for k in ("attention_mask", "token_type_ids") if batch.get(k) is not None}
        out.update(mask_batch(batch, rng, self.opts, self.vocab))
        return to_tensors(out)

    def score(self, out, batch, model):
        labels = batch["labels"]
        loss, count, correct = scored_loss(out.logits["mlm"], labels[labels != IGNORE])
        return loss, count, {"accuracy": (correct, count)}

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "encoder":
            raise ConfigError(
                f"the mlm objective needs a bidirectional encoder, but model.arch = {model_config.arch!r}; "
                "use objective.name = 'clm' for decoders"
            )
        return build_shared(model_config, [self], [1.0], self.vocab)
