"""Recurrent causal language modelling (Transformer-XL): predict every next token of
consecutive segments while each layer's memory of the previous segments is carried
from one step to the next, per stream.

Batches come from ``sesame.data.streams.SegmentStreams`` (``input_ids``, ``targets``,
``stream``, ``segment``); the memories are carried per stream as ``objectives/memory.py``
describes (and checkpointed with the weights). With ``model.mem_len = 0`` the same
batches train a model without memory (the baseline)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives.base import TokenObjective, to_tensors
from sesame.objectives.memory import StreamMemory, stream_fields
from sesame.task import TaskOutput


class RecurrentLM(StreamMemory, nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.init_memory()

    def forward(self, batch: dict) -> TaskOutput:
        ids, targets = batch["input_ids"], batch["targets"]
        memory = self.read_memory(batch, ids.shape[1])
        out = self.model(ids, cache=memory)
        self.write_memory(memory, batch, ids.shape[1])
        logits = out.logits["lm"]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
        correct = (logits.argmax(-1) == targets).sum()
        return TaskOutput(loss, targets.numel(), {"accuracy": (correct, targets.numel())})


@register("objective", "xl-clm")
class XLCLM(TokenObjective):
    """Causal LM over consecutive segments with Transformer-XL memory (``model.mem_len``)."""

    name = "xl-clm"
    archs = ("decoder",)
    Options = Section
    heads = ("lm",)
    needs = frozenset({"causal"})
    streams = True  # reads sesame.data.streams.SegmentStreams batches (pretrain builds them)

    def transform(self, batch, rng):
        return stream_fields(batch, to_tensors({"input_ids": batch["input_ids"], "targets": batch["targets"]}))

    def count(self, batch) -> int:
        return int(batch["targets"].numel())

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "decoder" or model_config.attention != "xl":
            raise ConfigError("the xl-clm objective needs a causal decoder with model.attention = 'xl' "
                              f"(got arch {model_config.arch!r}, attention {model_config.attention!r})")
        self.vocab.check_model(model_config.vocab_size)
        return RecurrentLM(build_model(model_config, needed=set(self.needs)))
