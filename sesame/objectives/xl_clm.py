"""Recurrent causal language modelling (Transformer-XL): predict every next token of
consecutive segments while each layer's memory of the previous segments is carried
from one step to the next, per stream.

Batches come from ``sesame.data.streams.SegmentStreams`` (``input_ids``, ``targets``,
``stream``, ``segment``). The module keeps one memory bank for training and one for
evaluation, each (layers, streams, mem_len, hidden): a batch's rows read their
streams' memories and write them back, detached. A stream's memory starts empty at
segment 0. The training bank is part of the module's state (``get_extra_state``), so
it goes into the checkpoint's ``model.safetensors`` and a resumed run continues with
exactly the memories it had. With ``model.mem_len = 0`` the same batches train a
model without memory (the baseline). Checkpointed memories are those of rank 0's
streams: recurrent runs resume exactly on one process."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives.base import TokenObjective, to_tensors
from sesame.task import TaskOutput


class RecurrentLM(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.mem_len = model.config.mem_len
        self.banks: dict[bool, torch.Tensor | None] = {True: None, False: None}

    def _bank(self, streams_needed: int, like: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        bank = self.banks[self.training]
        if bank is None or bank.shape[1] < streams_needed:
            grown = like.new_zeros(cfg.layers, streams_needed, self.mem_len, cfg.hidden)
            if bank is not None:
                grown[:, : bank.shape[1]] = bank.to(grown)
            bank = grown
        elif bank.device != like.device:
            bank = bank.to(like.device)
        self.banks[self.training] = bank
        return bank

    def forward(self, batch: dict) -> TaskOutput:
        ids, targets = batch["input_ids"], batch["targets"]
        t = ids.shape[1]
        memory = None
        if self.mem_len:
            rows = torch.as_tensor(batch["stream"], device=ids.device)
            seg = int(batch["segment"])  # a Python int from the source: no device sync
            bank = self._bank(int(max(batch["stream"])) + 1, self.model.body.embed.tokens.weight)
            memory = self.model.new_memory(self.mem_len)
            filled = min(seg * t, self.mem_len)
            if filled:
                for i, layer in enumerate(memory.layers):
                    layer.h = bank[i, rows, self.mem_len - filled:]
        out = self.model(ids, cache=memory)
        if memory is not None:
            kept = min((seg + 1) * t, self.mem_len)
            bank = self.banks[self.training]
            for i, layer in enumerate(memory.layers):
                bank[i, rows, self.mem_len - kept:] = layer.h.to(bank.dtype)
        logits = out.logits["lm"]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
        correct = (logits.argmax(-1) == targets).sum()
        return TaskOutput(loss, targets.numel(), {"accuracy": (correct, targets.numel())})

    # the training memories travel with the weights (safetensors, via state_dict)
    def get_extra_state(self):
        bank = self.banks[True]
        return torch.zeros(0) if bank is None else bank.detach().cpu().contiguous()

    def set_extra_state(self, state) -> None:
        self.banks[True] = None if state is None or state.numel() == 0 else state.clone()
        self.banks[False] = None


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
        out = to_tensors({"input_ids": batch["input_ids"], "targets": batch["targets"]})
        out["stream"], out["segment"] = [int(s) for s in batch["stream"]], int(batch["segment"])
        return out

    def count(self, batch) -> int:
        return int(batch["targets"].numel())

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "decoder" or model_config.attention != "xl":
            raise ConfigError("the xl-clm objective needs a causal decoder with model.attention = 'xl' "
                              f"(got arch {model_config.arch!r}, attention {model_config.attention!r})")
        self.vocab.check_model(model_config.vocab_size)
        return RecurrentLM(build_model(model_config, needed=set(self.needs)))
