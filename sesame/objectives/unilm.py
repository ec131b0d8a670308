"""UniLM (Dong et al. 2019): one bidirectional Transformer trained as four language
models through the attention layout alone.

Each micro-batch draws one mode with the configured proportions (the paper's: 1/3
bidirectional, 1/3 sequence-to-sequence, 1/6 left-to-right, 1/6 right-to-left):

- ``bidirectional``: every token sees every token (BERT's cloze);
- ``left_to_right``: a token sees itself and what precedes it (``Layout.causal``);
- ``right_to_left``: itself and what follows (``Layout.anticausal``);
- ``seq2seq``: each row is cut at a random point in the middle half of its tokens into
  a source (``token_type_ids`` 0) and a target (1); source tokens see the whole source,
  target tokens the source and the target up to themselves (``Layout.causal`` with
  ``prefix_len``); only target tokens are masked.

Masking is MLM's (``[objective.options]`` as for ``mlm``, token unit); the masked tokens
are predicted with the ``mlm`` head under the drawn mode's visibility. The batch's
``unilm_mode`` (a Python string, never a tensor) picks the layout, so the forward
pass never branches on a tensor value."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn import Layout
from sesame.objectives.base import IGNORE, TokenObjective, scored_loss, to_tensors
from sesame.objectives.masking import mask_batch
from sesame.objectives.mlm import MLMOptions

MODES = ("bidirectional", "left_to_right", "right_to_left", "seq2seq")


@dataclasses.dataclass
class UniLMOptions(MLMOptions):
    modes: dict[str, float] = dataclasses.field(default_factory=lambda: {
        "bidirectional": 1 / 3, "seq2seq": 1 / 3, "left_to_right": 1 / 6, "right_to_left": 1 / 6})

    def validate(self) -> None:
        super().validate()
        if self.unit != "token":
            raise ConfigError("the unilm objective masks single tokens; leave objective.options.unit = 'token'")
        bad = [k for k in self.modes if k not in MODES]
        if bad or not self.modes or min(self.modes.values()) < 0 or sum(self.modes.values()) <= 0:
            raise ConfigError(f"objective.options.modes maps {', '.join(MODES)} to non-negative proportions "
                              f"with a positive sum; got {self.modes}")


def seq2seq_split(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) source lengths: a cut uniform in the middle half of each row's real tokens."""
    n = mask.sum(1)
    lo, hi = np.maximum(1, n // 4), np.maximum(2, (3 * n) // 4)
    return (lo + np.floor(rng.random(len(n)) * (hi - lo + 1))).astype(np.int64).clip(max=np.maximum(n - 1, 1))


@register("objective", "unilm")
class UniLM(TokenObjective):
    name = "unilm"
    archs = ("encoder",)
    heads = ("mlm",)
    corrupts = True
    needs = frozenset({"causal", "anticausal", "prefix", "padding"})
    Options = UniLMOptions

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"])
        names = list(self.opts.modes)
        p = np.array([self.opts.modes[k] for k in names], dtype=float)
        mode = names[int(rng.choice(len(names), p=p / p.sum()))]
        mask = np.asarray(batch["attention_mask"]).astype(bool) if batch.get("attention_mask") is not None \
            else np.ones_like(ids, dtype=bool)
        masked = mask_batch(batch, rng, self.opts, self.vocab)
        out = {"input_ids": masked["input_ids"], "labels": masked["labels"], "attention_mask": mask}
        types = np.zeros_like(ids)
        if mode == "seq2seq":
            src = seq2seq_split(mask, rng)
            target = np.arange(ids.shape[1])[None, :] >= src[:, None]
            types = (target & mask).astype(np.int64)
            keep = target & (masked["labels"] != IGNORE)
            out["input_ids"] = np.where(keep | ~(masked["labels"] != IGNORE), masked["input_ids"], ids)
            out["labels"] = np.where(keep, masked["labels"], IGNORE)
            out["prefix_len"] = src
        elif batch.get("token_type_ids") is not None:
            types = np.asarray(batch["token_type_ids"])
        out["token_type_ids"] = types
        result = to_tensors(out)
        result["unilm_mode"] = mode
        return result

    def layout(self, batch) -> Layout:
        mode, pad = batch["unilm_mode"], batch["attention_mask"]
        if mode == "left_to_right":
            return Layout(causal=True, key_padding=pad)
        if mode == "right_to_left":
            return Layout(anticausal=True, key_padding=pad)
        if mode == "seq2seq":
            return Layout(causal=True, prefix_len=batch["prefix_len"], key_padding=pad)
        return Layout(key_padding=pad)

    def score(self, out, batch, model):
        labels = batch["labels"]
        loss, count, correct = scored_loss(out.logits["mlm"], labels[labels != IGNORE])
        return loss, count, {"accuracy": (correct, count)}

    def build(self, model_config):
        if self.opts.modes.get("seq2seq", 0) > 0 and model_config.type_vocab_size < 2:
            raise ConfigError("UniLM's seq2seq mode marks source and target with token_type_ids 0/1; set "
                              "model.type_vocab_size = 2 or objective.options.modes.seq2seq = 0")
        return super().build(model_config)

    def check_parts(self, parts) -> None:
        if len(parts) > 1:
            raise ConfigError("the unilm objective sets the attention layout per batch; train it alone")


def visible(layout: Layout, t: int) -> torch.Tensor:
    """The (B|1, T, T) visibility a layout gives (for tests and inspection)."""
    m = layout.dense(t, t, torch.device("cpu"))
    return m.expand(-1, -1, t, t)[:, 0] if m is not None else torch.ones(1, t, t, dtype=torch.bool)
