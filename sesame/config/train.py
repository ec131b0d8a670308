"""The train section: optimisation, precision, checkpoints and logging."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section, choice
from sesame.errors import ConfigError


@dataclasses.dataclass
class TrainConfig(Section):
    SECTION = "train"
    steps: int = 1000
    batch_size: int = 32  # sequences per optimizer step, across accumulation and ranks
    micro_batch_size: int | None = None  # per rank; default batch_size / ranks (no accumulation)
    optimizer: str = "adamw"  # adamw | lamb | sgd
    lr: float = 1e-4
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.01  # never applied to parameters with ndim < 2 (biases, norms)
    decay_embeddings: bool = True  # false: embedding tables get no weight decay either
    momentum: float = 0.0  # sgd only
    schedule: str = "linear"  # linear | cosine | inverse_sqrt | constant
    warmup: int = 100
    clip: float = 1.0  # 0 disables clipping
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 where native)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms(True); exact resume
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    eval_every: int = 0  # 0: never
    eval_batches: int = 20
    early_stop: int = 0  # stop after N evaluations without improvement; 0 disables
    log_every: int = 10
    save_every: int = 0  # 0: only at the end
    keep: int = 3  # newest complete checkpoints kept; 0 keeps all
    nan_policy: str = "stop"  # stop | skip
    tensorboard: bool = False
    compile: bool = False
    find_unused: bool = False  # DDP find_unused_parameters: for modules that leave some parameters unused

    def validate(self) -> None:
        choice("train.optimizer", self.optimizer, ("adamw", "lamb", "sgd"))
        choice("train.schedule", self.schedule, ("linear", "cosine", "inverse_sqrt", "constant"))
        choice("train.precision", self.precision, ("fp32", "bf16", "auto"))
        choice("train.device", self.device, ("auto", "cpu", "cuda"))
        choice("train.nan_policy", self.nan_policy, ("stop", "skip"))
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("train.steps and train.batch_size must be positive")
        if self.micro_batch_size is not None and (
            self.micro_batch_size <= 0 or self.batch_size % self.micro_batch_size
        ):
            raise ConfigError(
                f"train.micro_batch_size = {self.micro_batch_size} must divide "
                f"train.batch_size = {self.batch_size}"
            )
        for name in ("warmup", "eval_every", "eval_batches", "early_stop", "log_every", "save_every",
                     "keep", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} = {getattr(self, name)} must be >= 0")
        if self.lr <= 0 or self.clip < 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("train.lr must be > 0, train.clip and train.weight_decay >= 0, "
                              "train.momentum in [0, 1)")
        if len(self.betas) != 2:
            raise ConfigError("train.betas must have two numbers, e.g. [0.9, 0.999]")
