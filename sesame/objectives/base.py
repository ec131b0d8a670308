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
    tokens: tuple[str, ...] = ()  # the token strings in id order (ELMo's character CNN reads them)

    @classmethod
    def from_tokenizer(cls, tok) -> "Vocab":
        specials = tuple(sorted(i for i in tok.convert_tokens_to_ids(tok.special_tokens) if i is not None))
        start = next((i for i in (tok.bos_id, tok.cls_id, tok.pad_id) if i is not None), None)
        end = tok.eos_id if tok.eos_id is not None else tok.sep_id
        sentinels = []
        while (i := tok.token_to_id(f"<extra_id_{len(sentinels)}>")) is not None:
            sentinels.append(i)
        tokens = tuple(tok.id_to_token(i) or "" for i in range(tok.vocab_size))
        return cls(tok.vocab_size, specials, tok.pad_id, tok.mask_id, start, end, tuple(sentinels), tokens)

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


class Objective(Task):
    """A pre-training objective that can be one part of a composition.

    ``heads``: the model heads it trains. ``corrupts``: its ``transform`` rewrites
    ``input_ids`` (at most one such part per composition; its transform is the one
    that runs). ``fields(raw)``: what a non-corrupting part adds to the shared batch
    (NSP: its labels). ``score(out, batch, model) -> (loss SUM, count, metrics)`` on
    the shared forward pass. ``examples``: the ``data.examples`` kinds it needs."""

    heads: tuple[str, ...] = ()
    corrupts = False
    composable = True
    examples: tuple[str, ...] = ()
    archs: tuple[str, ...] = ("encoder",)
    Options: type[Section] = Section
    streams = False  # reads consecutive segments (sesame.data.streams) instead of windows

    def __init__(self, vocab: Vocab, opts: dict | None = None):
        self.vocab = vocab
        self.opts = options(self.Options, opts or {}, self.name)

    @classmethod
    def reads_streams(cls, opts: dict) -> bool:
        """Whether these ``[objective.options]`` train on consecutive segments (pretrain asks
        before it builds the data)."""
        return cls.streams

    def fields(self, raw: dict) -> dict:
        return {}

    def transform(self, batch, rng):
        out = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if batch.get(k) is not None}
        out.update(self.fields(batch))
        return to_tensors(out)

    def check_parts(self, parts: list["Objective"]) -> None:
        """Fail when this part cannot work beside ``parts`` (e.g. SBO without span masking)."""

    def check_corpus(self, corpus) -> None:
        """Fail when the prepared corpus lacks records this objective reads."""
        from sesame.objectives.masking import check_corpus

        check_corpus(self.opts, corpus)

    def score(self, out, batch, model) -> tuple[torch.Tensor, int, dict]:
        raise NotImplementedError

    def build(self, model_config) -> nn.Module:
        self.check_parts([self])
        return build_shared(model_config, [self], [1.0], self.vocab)


class TokenObjective(Objective):
    """An objective scored per token: targets = labels != -100."""

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())


class SharedModule(nn.Module):
    """One model, one forward pass, several parts scoring their heads.

    The loss is ``sum_p weight_p * loss_sum_p`` over ``sum_p count_p`` targets: every
    target of every part counts once in the shared denominator, and a weight scales a
    part's per-target loss. So the loss stays a sum over the global batch divided by
    one global count, and gradient accumulation stays exact. (BERT's reference code
    adds per-part *means*; with ~17-19 masked tokens per 128-token sequence, an NSP
    weight of that size reproduces that balance.) With several parts each part's
    ``loss`` and metrics are logged under its name (``nsp_accuracy``, ...)."""

    def __init__(self, model: nn.Module, parts: list[Objective], weights: list[float]):
        super().__init__()
        self.model, self.parts, self.weights = model, parts, weights

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        labels = batch.get("labels")
        select = labels != IGNORE if labels is not None else None
        layout = None
        for part in self.parts:
            layout = getattr(part, "layout", lambda b: None)(batch) or layout
        out = self.model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"),
                         layout=layout, positions=batch.get("positions"), select=select)
        if len(self.parts) == 1:
            loss, count, metrics = self.parts[0].score(out, batch, self.model)
            return TaskOutput(loss, count, metrics)
        total, count, metrics = None, 0, {}
        for part, weight in zip(self.parts, self.weights):
            loss, n, m = part.score(out, batch, self.model)
            total = weight * loss if total is None else total + weight * loss
            count += n
            metrics[f"{part.name}_loss"] = (loss.detach(), n)
            metrics.update({f"{part.name}_{k}": v for k, v in m.items()})
        return TaskOutput(total, count, metrics)


def trained_heads(model_config, parts: list[Objective]):
    """The model config with every trained head present; a declared head no part trains fails."""
    trained = [h for p in parts for h in p.heads]
    idle = [h for h in model_config.heads if h not in trained and h != "pooler"]
    if idle:
        names = [p.name for p in parts]
        raise ConfigError(
            f"model.heads declares {idle} but the objective {names} trains only {trained}; add the "
            f"objective that trains it (e.g. objective.name = {names + idle}) or drop it from model.heads"
        )
    heads = list(model_config.heads) + [h for h in trained if h not in model_config.heads]
    return model_config if heads == list(model_config.heads) else model_config.replace(heads=heads)


def build_shared(model_config, parts: list[Objective], weights: list[float], vocab: Vocab) -> SharedModule:
    from sesame.models import build_model

    model_config = trained_heads(model_config, parts)
    vocab.check_model(model_config.vocab_size)
    needs = set().union(*(set(p.needs) for p in parts))
    return SharedModule(build_model(model_config, needed=needs), parts, weights)
