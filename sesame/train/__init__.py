"""The generic trainer: optimizers and schedules, gradient accumulation normalised by
the global target count, bf16 autocast, DDP, NaN/Inf diagnosis, metrics logging and
atomic, exactly resumable checkpoints. See ``Trainer`` and ``BatchSource``."""
from sesame.train.checkpoint import find_resumable, list_checkpoints, read_state
from sesame.train.metrics import read_metrics
from sesame.train.nan import NonFiniteError, NonFiniteReport
from sesame.train.optim import Lamb, Schedule, build_optimizer, lr_factor, param_groups
from sesame.train.source import ArraySource, BatchSource, part_index, transform_rng
from sesame.train.trainer import StepResult, Trainer

__all__ = [
    "Trainer", "StepResult", "BatchSource", "ArraySource", "part_index", "transform_rng",
    "Lamb", "Schedule", "build_optimizer", "lr_factor", "param_groups", "NonFiniteError",
    "NonFiniteReport", "find_resumable", "list_checkpoints", "read_state", "read_metrics",
]
