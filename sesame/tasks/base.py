"""What the downstream tasks share: option parsing, the raw-batch protocol, padding,
wrapping a (pre-trained) ``Model`` with the task's head, and batched inference.

Raw batch protocol (what the loader hands to ``transform``)::

    {"examples": [example, ...]}     # reader dataclasses; tokenised in transform
    {"features": [feature, ...]}     # pre-tokenised: dicts from ``task.features(examples)``

A feature is a dict of plain Python lists and ints (JSON-able, so it can be
cached); ``collate`` pads a list of them into tensors. QA turns one example into
one feature per context window, so a batch of examples may give more rows."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

import sesame.models.task_heads  # noqa: F401  (registers the tag/span/choice heads)
from sesame.config.base import Section, choice
from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.models import Model, build_model
from sesame.models.heads import build_head
from sesame.task import Task

IGNORE = -100


TRUNCATION = ("head", "tail", "head+tail")  # the long-input policy of every task and verb; head is the default


@dataclasses.dataclass
class TaskOptions(Section):
    """Options every task has."""

    max_length: int = 128  # tokens per sequence, special tokens included
    truncation: str = "head"  # a longer input keeps its head, its tail, or both (a quarter head, the rest tail)

    def validate(self) -> None:
        if self.max_length < 4:
            raise ConfigError("task option max_length must be at least 4")
        choice("task.truncation", self.truncation, TRUNCATION)


def cut(ids: list[int], budget: int, policy: str = "head") -> list[int]:
    """``ids`` shortened to ``budget`` by ``policy`` (head, tail, head+tail: Sun et al. 2019 keep
    the first quarter and the last three quarters)."""
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if budget <= 0:
        return []
    if policy == "tail":
        return ids[-budget:]
    if policy == "head+tail":
        head = budget // 4
        return ids[:head] + ids[len(ids) - (budget - head):]
    return ids[:budget]


def pad(rows: Sequence[Sequence[int]], value: int, width: int | None = None, left: bool = False) -> torch.Tensor:
    """Right-pad (``left``: left-pad) int rows to one width: a (len(rows), width) long tensor."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    out = np.full((len(rows), max(width, 1)), value, dtype=np.int64)
    for i, row in enumerate(rows):
        if left:
            out[i, out.shape[1] - len(row):] = row
        else:
            out[i, : len(row)] = row
    return torch.from_numpy(out)


def truncate_pair(a: list[int], b: list[int] | None, budget: int, policy: str = "head"
                  ) -> tuple[list[int], list[int] | None]:
    """Truncation of one or two id lists to ``budget`` tokens in total: a pair loses tokens
    from its longer side first; each side is then cut by ``policy`` (see ``cut``)."""
    if b is None:
        return cut(a, budget, policy), None
    la, lb = len(a), len(b)
    while la + lb > budget:
        if la >= lb:
            la -= 1
        else:
            lb -= 1
    return cut(a, la, policy), cut(b, lb, policy)


def device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class FinetuneTask(Task):
    """Base of the downstream tasks. Subclasses set ``name``, ``head``, ``Options``,
    ``module_class`` and implement ``features``, ``collate``, ``count`` and ``evaluate``.

    ``tokenizer``: a ``sesame.tokenize.Tokenizer``; ``labels``: the label list (class
    names or tags) for tasks that classify; ``options``: the task's option table."""

    name = "finetune"
    head = ""
    keep_pooler = False  # keep a pre-trained pooler in front of the head
    archs: tuple[str, ...] = ("encoder",)
    Options: type[TaskOptions] = TaskOptions
    module_class: type[nn.Module] = nn.Module
    needs_labels = False
    truncations: tuple[str, ...] = ("head",)  # the long-input policies this task honours
    cls_last = False  # XLNet's input format (a [SEP] b [SEP] [CLS]); set from the model's pool_last
    takes_cls_last = False  # the task builds that format (others refuse a pool_last model)

    def __init__(self, tokenizer, labels: Sequence[str] | None = None, options: dict | None = None):
        if tokenizer is None:
            raise ConfigError(f"the {self.name} task needs a tokenizer")
        if self.needs_labels and not labels:
            raise ConfigError(f"the {self.name} task needs its label list (readers return it as Dataset.labels)")
        self.tokenizer = tokenizer
        self.labels = list(labels or [])
        self.label_ids = {label: i for i, label in enumerate(self.labels)}
        self.opts = self.Options.from_dict(dict(options or {}), f"task.options ({self.name})")
        if self.opts.truncation not in self.truncations:
            raise ConfigError(f"the {self.name} task keeps the head of a long input (truncation = 'head'"
                              f"{'; QA reads long contexts in windows' if self.name == 'qa' else ''}), "
                              f"not {self.opts.truncation!r}")
        self.pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0

    # ---- the Task seam --------------------------------------------------------
    def features(self, examples: Iterable[Any]) -> list[dict]:
        raise NotImplementedError

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def transform(self, batch: dict[str, Any], rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """Tokenise (when given examples) and pad. Deterministic: ``rng`` is unused."""
        if "features" in batch:
            feats = batch["features"]
        elif "examples" in batch:
            feats = self.features(batch["examples"])
        else:
            raise ConfigError(f"a {self.name} raw batch holds 'examples' or 'features', got keys {sorted(batch)}")
        return self.collate(feats)

    def model_config(self, config: ModelConfig) -> ModelConfig:
        """The config with exactly the heads this task runs (plus a pooler when kept; XLNet's
        classifier always has one, its sequence summary, fresh when pre-training had none)."""
        pooled = "pooler" in _heads_of(config) or config.pool_last
        heads = ["pooler"] if self.keep_pooler and pooled else []
        return config.replace(heads=heads + [self.head], **self.head_fields())

    def head_fields(self) -> dict:
        return {"num_labels": len(self.labels)} if self.labels else {}

    def check_arch(self, config: ModelConfig) -> None:
        """The model's arch, and its input format: a ``pool_last`` model (XLNet) reads
        ``a [SEP] b [SEP] [CLS]``, which this task then builds (or refuses)."""
        if config.arch not in self.archs:
            raise ConfigError(
                f"the {self.name} task needs model.arch in {self.archs}, but the model is {config.arch!r}"
            )
        if config.pool_last and not self.takes_cls_last:
            raise ConfigError(f"the {self.name} task does not build XLNet's input format (a [SEP] b [SEP] [CLS], "
                              "model.pool_last); classification and tagging do")
        self.cls_last = bool(config.pool_last)

    def inputs(self, ids_a, ids_b=None) -> tuple[list[int], list[int]]:
        """The model's input ids and token types for one text or a pair (see ``check_arch``)."""
        return self.tokenizer.build_inputs(ids_a, ids_b, cls_last=self.cls_last)

    def build(self, model_config: ModelConfig) -> nn.Module:
        """A new model (random weights) with this task's head, wrapped."""
        self.check_arch(model_config)
        return self.module_class(build_model(self.model_config(model_config)))

    def wrap(self, model: Model) -> nn.Module:
        """Fit an already-built (e.g. loaded pre-trained) ``Model`` with this task's head:
        pre-training heads are dropped, a pooler is kept when the task uses one, and a head
        that already has the right shapes (a fine-tuned checkpoint) is kept as it is.
        The model's config is updated, so saving it records the new heads."""
        if not isinstance(model, Model):
            raise ConfigError(f"wrap expects a sesame Model, got {type(model).__name__}")
        self.check_arch(model.config)
        config = self.model_config(model.config)
        param = next(model.parameters())
        heads = nn.ModuleDict()
        for name in config.heads:
            fresh = build_head(name, config)
            old = model.heads[name] if name in model.heads else None
            if old is not None and _same_shapes(old, fresh):
                heads[name] = old
            else:
                fresh.apply(model._init)
                heads[name] = fresh.to(device=param.device, dtype=param.dtype)
        model.heads = heads
        model.config = config
        model.tie_weights()
        model.check_ties()
        return self.module_class(model)

    # ---- inference helpers ------------------------------------------------------
    def batches(self, feats: Sequence[dict], batch_size: int) -> Iterable[tuple[int, dict[str, torch.Tensor]]]:
        if batch_size < 1:
            raise ConfigError("evaluation batch_size must be at least 1")
        for i in range(0, len(feats), batch_size):
            yield i, self.collate(feats[i:i + batch_size])


class TaskModule(nn.Module):
    """A task's trainable module: the wrapped ``Model`` under ``.model``."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def encode(self, batch: dict[str, torch.Tensor], select: torch.Tensor | None = None):
        return self.model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"),
                          select=select)


class inference:
    """``with inference(module):`` eval mode and no gradients, restoring the mode after."""

    def __init__(self, module: nn.Module):
        self.module, self.grad = module, torch.no_grad()

    def __enter__(self):
        self.was_training = self.module.training
        self.module.eval()
        self.grad.__enter__()
        return self.module

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        self.module.train(self.was_training)
        return False


def zero_loss(logits: torch.Tensor) -> torch.Tensor:
    """A zero loss still attached to the graph (a batch without labels)."""
    return logits.float().sum() * 0.0


def _heads_of(config: ModelConfig) -> list[str]:
    heads = list(config.heads)
    if any(h in heads for h in ("nsp", "sop")):
        heads.append("pooler")
    return heads


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa = {k: v.shape for k, v in a.state_dict().items()}
    sb = {k: v.shape for k, v in b.state_dict().items()}
    return sa == sb


def unk_rate(tokenizer, texts: Sequence[str], limit: int = 2000) -> float:
    """The fraction of the tokens of (the first ``limit`` of) ``texts`` that are the unknown token."""
    unk = tokenizer.unk_id
    if unk is None:
        return 0.0
    total = hits = 0
    for text in list(texts)[:limit]:
        ids = tokenizer.encode(text).ids
        total += len(ids)
        hits += sum(i == unk for i in ids)
    return hits / total if total else 0.0
