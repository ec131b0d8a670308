"""Recurrence memories carried across training steps, one per stream (Transformer-XL).

Objectives that read ``sesame.data.streams.SegmentStreams`` batches (``stream``,
``segment``) keep one memory bank for training and one for evaluation, each (layers,
streams, mem_len, hidden): a batch's rows read their streams' memories before the
forward pass and write them back, detached, after it. A stream's memory starts empty
at segment 0. The training bank is the module's extra state, so it goes into the
checkpoint's ``model.safetensors`` and a resumed run continues with exactly the
memories it had. Checkpointed memories are those of rank 0's streams: recurrent runs
resume exactly on one process. ``xl-clm`` and ``plm`` (``streams = true``) use it."""
from __future__ import annotations

import torch

from sesame.nn.cache import Memory


class StreamMemory:
    """Mixin for an ``nn.Module`` with a ``model`` (a Transformer-XL body) and ``mem_len``."""

    mem_len: int

    def init_memory(self) -> None:
        self.mem_len = self.model.config.mem_len
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

    def read_memory(self, batch: dict, length: int) -> Memory | None:
        """The memory of the batch's streams before a segment of ``length`` tokens (None
        without ``mem_len``); pass it as the model's ``cache``, then ``write_memory``."""
        if not self.mem_len:
            return None
        rows = torch.as_tensor(batch["stream"], device=batch["input_ids"].device)
        seg = int(batch["segment"])  # a Python int from the source: no device sync
        bank = self._bank(int(max(batch["stream"])) + 1, self.model.body.embed.tokens.weight)
        memory = self.model.new_memory(self.mem_len)
        filled = min(seg * length, self.mem_len)
        if filled:
            for i, layer in enumerate(memory.layers):
                layer.h = bank[i, rows, self.mem_len - filled:]
        return memory

    def write_memory(self, memory: Memory | None, batch: dict, length: int) -> None:
        if memory is None:
            return
        rows = torch.as_tensor(batch["stream"], device=batch["input_ids"].device)
        kept = min((int(batch["segment"]) + 1) * length, self.mem_len)
        bank = self.banks[self.training]
        for i, layer in enumerate(memory.layers):
            bank[i, rows, self.mem_len - kept:] = layer.h.to(bank.dtype)

    # the training memories travel with the weights (safetensors, via state_dict)
    def get_extra_state(self):
        bank = self.banks[True]
        return torch.zeros(0) if bank is None else bank.detach().cpu().contiguous()

    def set_extra_state(self, state) -> None:
        self.banks[True] = None if state is None or state.numel() == 0 else state.clone()
        self.banks[False] = None


def stream_fields(batch: dict, out: dict) -> dict:
    """Copy a stream batch's ``stream`` and ``segment`` into a transformed batch as Python ints."""
    out["stream"], out["segment"] = [int(s) for s in batch["stream"]], int(batch["segment"])
    return out
