"""A [MASK]-based permutation LM (objective ``mask-plm``): the targets (``mask_prob`` of
the real, non-special tokens, at least one per row) are replaced by [MASK] and predicted
one after another in a random order, through attention masks alone; no query stream.

The targets' original tokens are appended after the sequence as copies that keep the
target's position (and token type). Who sees what (True = may attend):

* a context (non-target) token: the context only;
* the [MASK] of the k-th target: the context, itself, and the copies of targets 1..k-1;
* the copy of the k-th target: the context and the copies of targets 1..k.

So each target is predicted from the unmasked context plus the targets predicted before
it, as original tokens, and no path through the layers reaches its own token or a later
one. Positions must be absolute (``learned`` / ``sinusoidal``) or none, since the copies
sit at their targets' positions."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.nn.layout import Layout
from sesame.objectives.base import IGNORE, TokenObjective, to_tensors
from sesame.task import TaskOutput


@dataclasses.dataclass
class MaskPLMOptions(Section):
    mask_prob: float = 0.15

    def validate(self) -> None:
        if not 0 < self.mask_prob < 1:
            raise ConfigError("objective.options.mask_prob must be in (0, 1)")


def mask_plm_mask(t: int, targets: np.ndarray, m: int) -> np.ndarray:
    """The (t + m, t + m) visibility for one row whose ``targets`` (positions, in prediction
    order) have copies at t, t+1, ...; rows/columns past t + len(targets) are padding."""
    n = t + m
    vis = np.zeros((n, n), dtype=bool)
    context = np.ones(t, dtype=bool)
    context[targets] = False
    vis[:t, :t] = context[None, :]  # the context sees the context only (target rows are set below)
    vis[targets] = False
    k = len(targets)
    copies = t + np.arange(k)
    for rank, pos in enumerate(targets):
        vis[pos, np.flatnonzero(context)] = True
        vis[pos, pos] = True
        vis[pos, copies[:rank]] = True
        vis[copies[rank], np.flatnonzero(context)] = True
        vis[copies[rank], copies[: rank + 1]] = True
    return vis


@register("objective", "mask-plm")
class MaskPLM(TokenObjective):
    name = "mask-plm"
    archs = ("encoder",)
    Options = MaskPLMOptions
    heads = ("mlm",)
    needs = frozenset({"explicit"})

    def transform(self, batch, rng):
        if self.vocab.mask_id is None:
            raise ConfigError("mask-plm needs a tokenizer with a [MASK] token")
        ids = np.asarray(batch["input_ids"])
        b, t = ids.shape
        real = np.asarray(batch["attention_mask"], dtype=bool) if batch.get("attention_mask") is not None \
            else np.ones((b, t), dtype=bool)
        special = np.isin(ids, list(self.vocab.special_ids) + ([self.vocab.pad_id] if self.vocab.pad_id is not None
                                                                 else []))
        types = np.asarray(batch["token_type_ids"]) if batch.get("token_type_ids") is not None else None
        chosen = []
        for row in range(b):
            eligible = np.flatnonzero(real[row] & ~special[row])
            if not len(eligible):
                eligible = np.flatnonzero(real[row])
            pick = eligible[rng.random(len(eligible)) < self.opts.mask_prob]
            if not len(pick):
                pick = eligible[rng.integers(0, len(eligible), 1)]
            chosen.append(rng.permutation(pick))  # the prediction order
        m = max(len(c) for c in chosen)
        pad = self.vocab.pad_id or 0
        out_ids = np.full((b, t + m), pad, dtype=np.int64)
        positions = np.zeros((b, t + m), dtype=np.int64)
        out_types = np.zeros((b, t + m), dtype=np.int64)
        labels = np.full((b, t + m), IGNORE, dtype=np.int64)
        mask = np.zeros((b, t + m, t + m), dtype=bool)
        for row, c in enumerate(chosen):
            k = len(c)
            out_ids[row, :t] = ids[row]
            out_ids[row, c] = self.vocab.mask_id
            out_ids[row, t:t + k] = ids[row, c]
            positions[row, :t] = np.arange(t)
            positions[row, t:t + k] = c
            if types is not None:
                out_types[row, :t] = types[row]
                out_types[row, t:t + k] = types[row, c]
            labels[row, c] = ids[row, c]
            vis = mask_plm_mask(t, c, m)
            vis[:, :t] &= real[row][None, :]
            mask[row] = vis
        out = {"input_ids": out_ids, "positions": positions, "visible": mask, "labels": labels}
        if types is not None:
            out["token_type_ids"] = out_types
        return to_tensors(out)

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "encoder" or model_config.position not in ("learned", "sinusoidal", "none"):
            raise ConfigError("mask-plm needs an encoder with absolute positions (learned, sinusoidal) or none, "
                              f"since target copies keep their positions; got arch {model_config.arch!r}, "
                              f"position {model_config.position!r}")
        if "mlm" not in model_config.heads:
            model_config = model_config.replace(heads=["mlm", *model_config.heads])
        self.vocab.check_model(model_config.vocab_size)
        return MaskPLMModule(build_model(model_config, needed=set(self.needs)))


class MaskPLMModule(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        out = self.model(batch["input_ids"], token_type_ids=batch.get("token_type_ids"),
                         layout=Layout(mask=batch["visible"][:, None]), positions=batch["positions"], select=select)
        logits = out.logits["mlm"]
        loss = F.cross_entropy(logits.float(), labels[select], reduction="sum")
        correct = (logits.argmax(-1) == labels[select]).sum()
        count = select.sum()
        return TaskOutput(loss, count, {"accuracy": (correct, count)})
