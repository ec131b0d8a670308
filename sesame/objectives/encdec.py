"""What the encoder-decoder pre-training objectives (``t5-span``, ``bart``,
``mass``) share: reading a window's real tokens, padding the encoder and decoder
sides to fixed widths, teacher forcing, and the module that scores the ``lm`` head.

A transformed batch holds ``input_ids``, ``attention_mask`` (B, S) for the
encoder and ``decoder_input_ids``, ``decoder_attention_mask``, ``labels`` (B, T)
for the decoder (-100 where nothing is predicted). Teacher forcing feeds
``[start] + target[:-1]`` and predicts ``target``, where ``start`` is the
tokenizer's bos (else cls, else pad, T5's convention): the same convention the
``seq2seq`` fine-tuning task uses, so a pre-trained model fine-tunes as is."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import nn

from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives.base import IGNORE, TokenObjective, scored_loss, to_tensors
from sesame.task import TaskOutput


def real_tokens(batch: dict, row: int) -> np.ndarray:
    """Row ``row``'s tokens where ``attention_mask`` is set (all of them without a mask)."""
    ids = np.asarray(batch["input_ids"][row])
    mask = batch.get("attention_mask")
    return ids if mask is None else ids[np.asarray(mask[row]).astype(bool)]


def protected_ends(ids: np.ndarray, special: np.ndarray) -> tuple[int, int]:
    """(head, tail): a leading and a trailing special token ([CLS]/<s>, </s>) stay in place,
    as fairseq keeps bos and eos; the noise works on ``ids[head:len(ids) - tail]``."""
    head = int(len(ids) > 0 and special[ids[0]])
    tail = int(len(ids) > head and special[ids[-1]])
    return head, tail


def pad_rows(rows: Sequence[np.ndarray], width: int, value: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, width) int64 array and its bool mask; a row longer than ``width`` is a bug upstream."""
    out = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"row of {len(row)} tokens does not fit the width {width}")
        out[i, :len(row)] = row
        mask[i, :len(row)] = True
    return out, mask


class Seq2SeqObjective(TokenObjective):
    """Base of the encoder-decoder objectives: subclasses implement ``corrupt``."""

    archs = ("encoder-decoder",)
    heads = ("lm",)
    composable = False  # its module scores the decoder itself; it trains alone

    def __init__(self, vocab, opts=None):
        super().__init__(vocab, opts)
        if vocab.start_id is None:
            raise ConfigError(f"the {self.name} objective needs a tokenizer with <s>, [CLS] or <pad> to start "
                              "the decoder")
        size = max(vocab.size, max(vocab.special_ids, default=0) + 1)
        self.special = np.zeros(size, dtype=bool)
        self.special[list(vocab.special_ids)] = True
        if vocab.pad_id is not None:
            self.special[vocab.pad_id] = True

    @property
    def pad_id(self) -> int:
        return self.vocab.pad_id if self.vocab.pad_id is not None else 0

    def teacher_forcing(self, targets: Sequence[np.ndarray], width: int) -> dict[str, np.ndarray]:
        dec = [np.concatenate([[self.vocab.start_id], t[:-1]]) for t in targets]
        dec_ids, dec_mask = pad_rows(dec, width, self.pad_id)
        labels, _ = pad_rows(targets, width, IGNORE)
        return {"decoder_input_ids": dec_ids, "decoder_attention_mask": dec_mask, "labels": labels}

    def pack(self, sources: Sequence[np.ndarray], width: int, decoder: dict[str, np.ndarray]) -> dict:
        ids, mask = pad_rows(sources, width, self.pad_id)
        return to_tensors({"input_ids": ids, "attention_mask": mask, **decoder})

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "encoder-decoder":
            raise ConfigError(
                f"the {self.name} objective trains an encoder-decoder, but model.arch = {model_config.arch!r}; "
                "pick a t5/bart preset or set model.arch = 'encoder-decoder'"
            )
        if "lm" not in model_config.heads:
            model_config = model_config.replace(heads=["lm"])
        self.vocab.check_model(model_config.vocab_size)
        return Seq2SeqLMModule(build_model(model_config))


class Seq2SeqLMModule(nn.Module):
    """Encodes the corrupted input, decodes with teacher forcing, scores the labelled positions."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        out = self.model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"],
                         decoder_attention_mask=batch["decoder_attention_mask"], select=select)
        loss, count, correct = scored_loss(out.logits["lm"], labels[select])
        return TaskOutput(loss, count, {"accuracy": (correct, count)})
