"""What the objectives share: option parsing, tensor conversion, the scored
forward pass of an LM-style head."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section
from sesame.errors import ConfigError
from sesame.nn import Layout
from sesame.task import Task, TaskOutput

IGNORE = -100


def options(cls: type[Section], given: dict, name: str) -> Any:
    """Parse an objective's ``[objective.options]`` table strictly."""
    return cls.from_dict(dict(given), f"objective.options ({name})")


def to_tensors(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for k, v in batch.items()}


@dataclasses.dataclass
class Vocab:
    """The token facts an objective needs from the tokenizer."""

    size: int
    special_ids: tuple[int, ...] = ()
    pad_id: int | None = None
    mask_id: int | None = None
    start_id: int | None = None  # encoder-decoders: the decoder's first input (bos, else cls, else pad)
    end_id: int | None = None  # ... and the token that ends a sequence (eos, else sep)
    sentinel_ids: tuple[int, ...] = ()  # <extra_id_0>, <extra_id_1>, ... (T5 span corruption)

    @classmethod
    def from_tokenizer(cls, tok) -> "Vocab":
        specials = tuple(sorted(i for i in tok.convert_tokens_to_ids(tok.special_tokens) if i is not None))
        start = next((i for i in (tok.bos_id, tok.cls_id, tok.pad_id) if i is not None), None)
        end = tok.eos_id if tok.eos_id is not None else tok.sep_id
        sentinels = []
        while (i := tok.token_to_id(f"<extra_id_{len(sentinels)}>")) is not None:
            sentinels.append(i)
        return cls(tok.vocab_size, specials, tok.pad_id, tok.mask_id, start, end, tuple(sentinels))

    def check_model(self, vocab_size: int) -> None:
        if vocab_size < self.size:
            raise ConfigError(
                f"model.vocab_size = {vocab_size} is smaller than the tokenizer's {self.size} tokens; "
                f"set model.vocab_size = {self.size}"
            )


def scored_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, float]:
    """Summed cross-entropy over (N, V) logits and (N,) labels, the count and the correct count."""
    loss = F.cross_entropy(logits.float(), labels, reduction="sum")
    correct = (logits.argmax(-1) == labels).sum().item()
    return loss, labels.numel(), correct


class TokenObjective(Task):
    """An objective scored per token: options parsed strictly, targets = labels != -100."""

    Options: type[Section] = Section

    def __init__(self, vocab: Vocab, opts: dict | None = None):
        self.vocab = vocab
        self.opts = options(self.Options, opts or {}, self.name)

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())


class TokenModule(nn.Module):
    """Scores one head at the labelled positions of a batch. With ``documents``, a
    batch's ``doc_ids`` keep causal attention inside each document and its
    ``positions`` restart per document (packed CLM)."""

    def __init__(self, model: nn.Module, head: str, documents: bool = False):
        super().__init__()
        self.model, self.head, self.documents = model, head, documents

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        layout = positions = None
        if self.documents and "doc_ids" in batch:
            layout = Layout(causal=True, doc_ids=batch["doc_ids"], key_padding=batch.get("attention_mask"))
            positions = batch["positions"]
        out = self.model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"),
                         layout=layout, positions=positions, select=select)
        loss, count, correct = scored_loss(out.logits[self.head], labels[select])
        return TaskOutput(loss, count, {"accuracy": (correct, count)})
