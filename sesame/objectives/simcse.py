"""SimCSE (Gao et al. 2021): contrastive sentence embeddings.

``unsupervised``: each sentence is encoded twice in one pass (the batch stacked on
itself), so two independent dropout masks make two views; view 2 of sentence i is
the positive of view 1, the other sentences of the micro-batch are negatives, under
InfoNCE with ``temperature`` (cosine similarities / τ, cross-entropy towards the
diagonal). Dropout is the only noise, so a model without dropout is refused.
``supervised``: the batch carries pairs (``pair_input_ids``/``pair_attention_mask``,
an entailment or paraphrase of each sentence) and optionally hard negatives
(``negative_input_ids``/``negative_attention_mask``); the candidates of anchor i are
every positive and every negative of the micro-batch.

The sentence vector is ``pooling`` (``cls``: the first token; ``mean``: mean over real
tokens, what all-MiniLM-L6-v2 and the ``feature-extraction`` pipeline's default use).
One target per anchor. The negatives are those of one micro-batch: accumulation sums
per-micro-batch InfoNCE losses exactly, but a larger accumulated batch does not give
more negatives. ``init`` starts from a model directory (sesame or Hugging Face):
SimCSE fine-tunes a pre-trained encoder; the run's ``[model]`` must then have its
shape. ``sesame.evaluate.similarity`` scores a model on sentence pairs (Spearman)."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import Objective, SharedModule, Vocab
from sesame.task import TaskOutput

SHAPE = ("family", "hidden", "layers", "num_heads", "intermediate", "vocab_size", "max_positions",
         "embedding_size", "type_vocab_size", "position", "norm", "prenorm", "activation", "feedforward")


@dataclasses.dataclass
class SimCSEOptions(Section):
    mode: str = "unsupervised"
    temperature: float = 0.05
    pooling: str = "cls"
    init: str | None = None

    def validate(self) -> None:
        choice("objective.options.mode", self.mode, ("unsupervised", "supervised"))
        choice("objective.options.pooling", self.pooling, ("cls", "mean"))
        if self.temperature <= 0:
            raise ConfigError("objective.options.temperature must be positive")


def load_init(path: str):
    """The model of a sesame (config.toml) or Hugging Face (config.json) directory."""
    from pathlib import Path

    from sesame.models.hf import from_hf
    from sesame.models.io import load_model

    p = Path(path)
    if (p / "config.toml").is_file():
        return load_model(p)[0]
    if (p / "config.json").is_file():
        return from_hf(p)[0]
    raise ConfigError(f"objective.options.init = {path!r} is neither a sesame nor a Hugging Face model directory")


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    if how == "cls":
        return hidden[:, 0]
    w = (mask if mask is not None else torch.ones(hidden.shape[:2], device=hidden.device))[..., None].to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1e-9)


def info_nce(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float):
    """Summed InfoNCE: anchor i's positive is candidate i; (loss sum, correct count)."""
    sim = F.normalize(anchors.float(), dim=-1) @ F.normalize(candidates.float(), dim=-1).T / temperature
    target = torch.arange(len(anchors), device=anchors.device)
    return F.cross_entropy(sim, target, reduction="sum"), (sim.argmax(-1) == target).sum()


class SimCSEModule(SharedModule):
    def forward(self, batch):
        part = self.parts[0]
        ids, mask = batch["input_ids"], batch.get("attention_mask")
        b = ids.shape[0]
        if part.opts.mode == "unsupervised":
            both = torch.cat([ids, ids])
            m = torch.cat([mask, mask]) if mask is not None else None
            z = pool(self.model(both, m).hidden, m, part.opts.pooling)
            anchors, cands = z[:b], z[b:]
        else:
            groups = [("input_ids", "attention_mask"), ("pair_input_ids", "pair_attention_mask")]
            if "negative_input_ids" in batch:
                groups.append(("negative_input_ids", "negative_attention_mask"))
            z = [pool(self.model(batch[i], batch.get(k)).hidden, batch.get(k), part.opts.pooling) for i, k in groups]
            anchors, cands = z[0], torch.cat(z[1:])
        loss, correct = info_nce(anchors, cands, part.opts.temperature)
        return TaskOutput(loss, b, {"accuracy": (correct, b)})


@register("objective", "simcse")
class SimCSE(Objective):
    name = "simcse"
    archs = ("encoder",)
    heads = ()
    trains_body_only = True
    composable = False
    Options = SimCSEOptions

    def transform(self, batch, rng):
        keys = ["input_ids", "attention_mask"]
        if self.opts.mode == "supervised":
            if "pair_input_ids" not in batch:
                raise ConfigError("supervised SimCSE needs sentence pairs (pair_input_ids); give a pair source "
                                  "or set objective.options.mode = 'unsupervised'")
            keys += ["pair_input_ids", "pair_attention_mask", "negative_input_ids", "negative_attention_mask"]
        return {k: torch.as_tensor(np.asarray(batch[k])) for k in keys if batch.get(k) is not None}

    def count(self, batch) -> int:
        return int(batch["input_ids"].shape[0])

    def build(self, model_config):
        from sesame.models import build_model

        if self.opts.init:
            model = load_init(self.opts.init)
            wrong = [k for k in SHAPE if getattr(model.config, k) != getattr(model_config, k)]
            if wrong:
                raise ConfigError(
                    f"objective.options.init = {self.opts.init!r} has a model of another shape than [model] "
                    f"({', '.join(f'{k} {getattr(model.config, k)} != {getattr(model_config, k)}' for k in wrong)}); "
                    "copy its shape into [model]"
                )
            model = model.train()
        else:
            model = build_model(model_config)
        cfg = model.config
        if self.opts.mode == "unsupervised" and cfg.dropout == 0 and cfg.attention_dropout == 0:
            raise ConfigError("unsupervised SimCSE uses dropout as its only noise, but model.dropout and "
                              "model.attention_dropout are 0; set model.dropout = 0.1")
        Vocab.check_model(self.vocab, cfg.vocab_size)
        return SimCSEModule(model, [self], [1.0])
