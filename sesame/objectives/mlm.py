"""Masked language modelling (BERT, RoBERTa): dynamic masking on the CPU side.

Each non-special, non-padding token is selected with probability
``mask_prob``; a selected token becomes ``[MASK]`` with probability
``replace_mask``, a random non-special token with probability
``replace_random``, and stays itself otherwise. Labels are the original
tokens at selected positions and ``-100`` elsewhere. The head is computed only
at selected positions."""
from __future__ import annotations

import dataclasses

import numpy as np
from torch import nn

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives.base import IGNORE, TokenModule, TokenObjective, Vocab, to_tensors


@dataclasses.dataclass
class MLMOptions(Section):
    mask_prob: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1

    def validate(self) -> None:
        if not 0 < self.mask_prob < 1:
            raise ConfigError("objective.options.mask_prob must be in (0, 1)")
        if self.replace_mask < 0 or self.replace_random < 0 or self.replace_mask + self.replace_random > 1:
            raise ConfigError("objective.options replace_mask + replace_random must be within [0, 1]")


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, opts: MLMOptions, vocab: Vocab,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(corrupted ids, labels) for an int array of token ids."""
    if vocab.mask_id is None:
        raise ConfigError("masked language modelling needs a tokenizer with a [MASK] token")
    special = np.zeros(max(vocab.size, int(ids.max(initial=0)) + 1), dtype=bool)
    special[list(vocab.special_ids)] = True
    if vocab.pad_id is not None:
        special[vocab.pad_id] = True
    eligible = ~special[ids] if candidates is None else (candidates & ~special[ids])
    selected = eligible & (rng.random(ids.shape) < opts.mask_prob)
    labels = np.where(selected, ids, IGNORE)
    action = rng.random(ids.shape)
    to_mask = selected & (action < opts.replace_mask)
    to_random = selected & (action >= opts.replace_mask) & (action < opts.replace_mask + opts.replace_random)
    normal = np.flatnonzero(~special[: vocab.size])
    out = ids.copy()
    out[to_mask] = vocab.mask_id
    out[to_random] = normal[rng.integers(0, len(normal), int(to_random.sum()))]
    return out, labels


@register("objective", "mlm")
class MLM(TokenObjective):
    name = "mlm"
    archs = ("encoder",)
    Options = MLMOptions

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"])
        out = {k: batch[k] for k in ("attention_mask", "token_type_ids") if batch.get(k) is not None}
        out["input_ids"], out["labels"] = mask_tokens(ids, rng, self.opts, self.vocab)
        return to_tensors(out)

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "encoder":
            raise ConfigError(
                f"the mlm objective needs a bidirectional encoder, but model.arch = {model_config.arch!r}; "
                "use objective.name = 'clm' for decoders"
            )
        if "mlm" not in model_config.heads:
            model_config = model_config.replace(heads=["mlm", *model_config.heads])
        self.vocab.check_model(model_config.vocab_size)
        return TokenModule(build_model(model_config), "mlm")
