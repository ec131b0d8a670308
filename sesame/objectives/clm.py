"""Causal language modelling (GPT): predict each next token.

Windows may pack several documents; with ``within_documents`` (the default
when the batch carries ``doc_ids``) attention stays inside each document,
positions restart at each document, and no token is asked to predict the first
token of the next document."""
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
class CLMOptions(Section):
    within_documents: bool = True


def document_positions(doc_ids: np.ndarray) -> np.ndarray:
    """Position of each token inside its document (restarts where doc id changes)."""
    b, t = doc_ids.shape
    idx = np.broadcast_to(np.arange(t), (b, t))
    start = np.ones((b, t), dtype=bool)
    start[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    first = np.maximum.accumulate(np.where(start, idx, 0), axis=1)
    return idx - first


def next_token_labels(ids: np.ndarray, attention_mask=None, doc_ids=None, pad_id=None) -> np.ndarray:
    labels = np.full_like(ids, IGNORE)
    labels[:, :-1] = ids[:, 1:]
    if attention_mask is not None:
        real = np.asarray(attention_mask).astype(bool)
        labels[:, :-1][~real[:, 1:]] = IGNORE
        labels[~real] = IGNORE
    if doc_ids is not None:
        labels[:, :-1][doc_ids[:, 1:] != doc_ids[:, :-1]] = IGNORE
    return labels


@register("objective", "clm")
class CLM(TokenObjective):
    name = "clm"
    archs = ("decoder",)
    heads = ("lm",)
    Options = CLMOptions

    def __init__(self, vocab: Vocab, opts: dict | None = None):
        super().__init__(vocab, opts)
        self.needs = frozenset({"causal", "documents"} if self.opts.within_documents else {"causal"})

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"])
        docs = batch.get("doc_ids") if self.opts.within_documents else None
        out = {"input_ids": ids}
        if batch.get("attention_mask") is not None:
            out["attention_mask"] = batch["attention_mask"]
        if docs is not None:
            docs = np.asarray(docs)
            out["doc_ids"] = docs
            out["positions"] = document_positions(docs)
        out["labels"] = next_token_labels(ids, batch.get("attention_mask"), docs)
        return to_tensors(out)

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "decoder":
            raise ConfigError(
                f"the clm objective needs a causal decoder, but model.arch = {model_config.arch!r}; "
                "use objective.name = 'mlm' for encoders"
            )
        self.vocab.check_model(model_config.vocab_size)
        return TokenModule(build_model(model_config, needed=set(self.needs)), "lm", self.opts.within_documents)
