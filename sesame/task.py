"""The seam between what is trained and the trainer. Pre-training objectives
and downstream tasks implement ``Task``; the trainer only ever sees this.

``transform`` runs on the CPU side (in the loader): masking, permuting,
pairing; it must be a pure function of the raw batch and the ``rng`` it is
given, so a resumed run re-creates exactly the same batches.
``build`` returns the module to train; its ``forward(batch)`` returns a
``TaskOutput`` whose loss is a SUM over ``count`` targets. The trainer divides
by the global target count across micro-batches and ranks, so accumulated
gradients equal the full-batch gradient."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass
class TaskOutput:
    loss: torch.Tensor  # sum of per-target losses (scalar)
    count: torch.Tensor | int  # number of targets the loss sums over
    metrics: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # name -> (sum, count)


class Task:
    name = "task"
    # layout features the task's batches need from attention kernels (checked at build time)
    needs: frozenset[str] = frozenset()

    def transform(self, batch: dict[str, Any], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        """Targets in a transformed batch, known before the forward pass."""
        raise NotImplementedError

    def build(self, model_config) -> nn.Module:
        raise NotImplementedError
