"""Transfer strategies for fine-tuning a pre-trained model (the survey of Qiu et al.
2020, section 7): how much of the network trains, which layers transfer, and how
several tasks share one encoder.

``StrategyConfig`` (the ``[strategy]`` section) picks them:

- ``kind = "full"``: every parameter trains (the default).
- ``kind = "frozen"``: feature-based use; the body is frozen and only the heads (and
  the scalar mix) train.
- ``kind = "adapters"``: bottleneck adapters after attention and feed-forward
  (Houlsby et al. 2019) are added to a frozen body; the adapters, the heads and, with
  ``adapter_norms``, the body's norms train.
- ``scalar_mix``: the heads read ELMo's learned softmax-weighted mix of all layers
  (``model.scalar_mix``; saved with the model, so pipelines use it too).
- ``transfer_layers``: ``"all"`` (every pre-trained weight transfers), ``"embeddings"``
  (only the embedding layer transfers; blocks, final norms and pre-trained heads such
  as the pooler are re-initialised), ``"top"`` (all weights transfer and the task reads
  the top layer only, so it refuses ``scalar_mix``; "all" with ``scalar_mix`` reads them all),
  ``"none"`` (nothing transfers: the same architecture and tokenizer from random
  initialisation, the baseline that shows what pre-training is worth).
- ``gradual_unfreeze`` (ULMFiT): start with only the top group (heads, mix, final norm)
  trainable and unfreeze one layer group per epoch (or per ``unfreeze_every`` steps),
  top to bottom, the embeddings last (groups with nothing to train are skipped).
- ``freeze_embeddings_steps``: the token embedding (say, initialised from static vectors by
  ``sesame static transfer``) does not train for the first N optimizer steps, then does
  (a tied LM head shares the matrix and is held with it).
- ``layer_lr_decay`` (discriminative learning rates): block ``l`` of ``L`` (1 = lowest)
  learns at ``lr * decay ** (L - l)``, the embeddings at ``lr * decay ** L``, the heads at ``lr``.
- ``dropout`` / ``attention_dropout``: the fine-tuning run's rates in place of the model's
  (a pre-training run often trains without dropout); unset keeps them. The model is rebuilt
  with the new rates and every weight kept (``prepare_model``).

Layer groups are found by parameter name: 0 = ``body.embed``/positions, 1..L = blocks
(an encoder-decoder's encoder blocks, then its decoder blocks), L+1 = everything else.

Multi-task fine-tuning: ``share_body`` gives each task a ``Model`` shell over one shared
body (and mix) with its own heads; ``MultiTaskModule`` holds the task modules,
``MultiTask`` routes a batch to its task, and ``MixedSource`` interleaves the tasks'
batches step by step (round-robin, or sampled in proportion to their sizes)."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from sesame.config.base import Section, choice
from sesame.errors import CheckpointError, ConfigError, DataError
from sesame.models.io import load_state, state_to_save
from sesame.models.model import Model, build_model
from sesame.nn.adapters import Adapter
from sesame.nn.norms import RMSNorm
from sesame.nn.scalar_mix import ScalarMix
from sesame.task import Task, TaskOutput

KINDS = ("full", "frozen", "adapters")
TRANSFER = ("all", "embeddings", "top", "none")


@dataclasses.dataclass
class StrategyConfig(Section):
    """How a pre-trained model is transferred to a task (see the module docstring)."""

    SECTION = "strategy"
    kind: str = "full"  # full | frozen | adapters
    scalar_mix: bool = False  # heads read an ELMo-style learned mix of all layers
    scalar_mix_norm: bool = False  # ... each layer layer-normalised first
    transfer_layers: str = "all"  # all | embeddings | top | none
    gradual_unfreeze: bool = False  # ULMFiT: unfreeze one layer group at a time, top to bottom
    unfreeze_every: int = 0  # steps per newly unfrozen group; 0: one epoch of the training data
    layer_lr_decay: float = 1.0  # lr of block l = lr * decay ** (L - l); 1.0: off
    adapter_size: int = 64  # kind = "adapters": bottleneck width
    adapter_norms: bool = True  # kind = "adapters": also train the body's norms (Houlsby et al.)
    freeze_embeddings_steps: int = 0  # the token embedding trains only from this optimizer step on
    task_encoder: str = "none"  # the task model over the features: none | bilstm | bag (model.task_encoder)
    task_hidden: int = 128  # units per direction of the task BiLSTM
    task_embedding: int = 0  # the task's own token embedding, concatenated with the features
    task_dropout: float = 0.1  # dropout in the task encoder
    dropout: float | None = None  # fine-tuning dropout (hidden) in place of the model's; None keeps it
    attention_dropout: float | None = None  # ... and on the attention probabilities

    def validate(self) -> None:
        choice("strategy.kind", self.kind, KINDS)
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"strategy.{name} = {value} must be in [0, 1) (unset keeps the model's)")
        choice("strategy.transfer_layers", self.transfer_layers, TRANSFER)
        choice("strategy.task_encoder", self.task_encoder, ("none", "bilstm", "bag"))
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise ConfigError(f"strategy.layer_lr_decay = {self.layer_lr_decay} must be in (0, 1]; 1.0 turns it off")
        if self.kind == "adapters" and self.adapter_size <= 0:
            raise ConfigError("strategy.adapter_size must be positive for kind = 'adapters'")
        if self.unfreeze_every < 0:
            raise ConfigError("strategy.unfreeze_every must be >= 0 (0: one epoch)")
        if self.freeze_embeddings_steps < 0:
            raise ConfigError("strategy.freeze_embeddings_steps must be >= 0 (0: off)")
        if self.transfer_layers == "top" and self.scalar_mix:
            raise ConfigError("strategy.transfer_layers = 'top' reads the top layer only, but scalar_mix reads "
                              "all layers; use transfer_layers = 'all' with scalar_mix")
        if self.gradual_unfreeze and self.kind == "frozen":
            raise ConfigError("strategy.gradual_unfreeze has nothing to unfreeze with kind = 'frozen' "
                              "(the body stays frozen); use kind = 'full' or 'adapters'")


def as_strategy(strategy: StrategyConfig | dict | str | None) -> StrategyConfig:
    if strategy is None:
        return StrategyConfig()
    if isinstance(strategy, StrategyConfig):
        return strategy
    if isinstance(strategy, str):
        return StrategyConfig.from_dict({"kind": strategy})
    if isinstance(strategy, dict):
        return StrategyConfig.from_dict(strategy)
    raise ConfigError(f"a strategy is a StrategyConfig, a dict or a kind name, got {type(strategy).__name__}")


# ---------------------------------------------------------------- the model

def prepare_model(model: Model, strategy: StrategyConfig) -> tuple[Model, list[str]]:
    """The model with what the strategy adds to it: adapters (``model.adapter_size``) and the
    scalar mix (``model.scalar_mix``), new parts at their initial values, every pre-trained
    weight kept. Returns (model, notes). Call before ``task.wrap``."""
    cfg, changes, notes = model.config, {}, []
    if strategy.kind == "adapters":
        if cfg.adapter_size and cfg.adapter_size != strategy.adapter_size:
            raise ConfigError(f"the model already has adapters of size {cfg.adapter_size}; ask for "
                              f"strategy.adapter_size = {cfg.adapter_size} (or start from a model without)")
        if not cfg.adapter_size:
            changes["adapter_size"] = strategy.adapter_size
    if strategy.scalar_mix and not cfg.scalar_mix:
        changes["scalar_mix"] = True
    if strategy.scalar_mix_norm and not cfg.scalar_mix_norm:
        changes["scalar_mix_norm"] = True
    if strategy.task_encoder != "none":
        want = {"task_encoder": strategy.task_encoder, "task_hidden": strategy.task_hidden,
                "task_embedding": strategy.task_embedding, "task_dropout": strategy.task_dropout}
        changes.update({k: v for k, v in want.items() if getattr(cfg, k) != v})
    for name in ("dropout", "attention_dropout"):  # the pre-training run's rates need not be the task's
        value = getattr(strategy, name)
        if value is not None and value != getattr(cfg, name):
            changes[name] = value
    if not changes:
        return model, notes
    param = next(model.parameters())
    fresh = build_model(cfg.replace(**changes)).to(device=param.device, dtype=param.dtype)
    report = load_state(fresh, state_to_save(model), allow_missing=True)
    unexpected = [k for k in report.missing if "_adapter." not in k and not k.startswith(("mix.", "task_encoder."))]
    if unexpected:
        raise CheckpointError(f"adding {sorted(changes)} left pre-trained weights unloaded: {unexpected[:5]}")
    fresh.train(model.training)
    notes.append(f"added {', '.join(f'{k} = {v}' for k, v in changes.items())} "
                 f"({len(report.missing)} new tensors, {report.loaded} pre-trained ones kept)")
    return fresh, notes


def models_in(module: nn.Module) -> list[Model]:
    out, seen = [], set()
    for m in module.modules():
        if isinstance(m, Model) and id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


def reinit(model: Model, keep_embeddings: bool = True) -> int:
    """Re-initialise everything but (with ``keep_embeddings``) the embeddings and positions:
    blocks, final norms, the scalar mix and untied heads. Returns the number of tensors."""
    keep = {"embed", "position", "decoder_position", "decoder_embed_norm"} if keep_embeddings else set()
    modules = [m for name, m in model.body.named_children() if name not in keep]
    modules += [h for h in model.heads.values() if not h.tied]
    if model.mix is not None:
        modules.append(model.mix)
    count = 0
    for root in modules:
        root.apply(model._init)
        for m in root.modules():
            if isinstance(m, (Adapter, ScalarMix)):
                m.reset_parameters()
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        count += sum(1 for _ in root.parameters())
    if model.config.init == "t5":  # T5's per-weight scales over what was just re-initialised
        from sesame.models.families.t5 import t5_init

        t5_init(model, keep)
    return count


# ---------------------------------------------------------------- layer groups

_BODY = re.compile(r"(?:^|\.)body\.")
_EMBED = re.compile(r"(?:^|\.)body\.(?:embed|position|decoder_position|decoder_embed_norm)\.")
_TOKENS = re.compile(r"(?:^|\.)body\.embed\.tokens\.")
_BLOCK = re.compile(r"(?:^|\.)body\.(layers|encoder|decoder)\.(\d+)\.")


class LayerGroups:
    """Parameter name -> layer group: 0 embeddings, 1..L blocks bottom to top, L+1 the rest."""

    def __init__(self, names: Sequence[str]):
        depth: dict[str, int] = {}
        for name in names:
            m = _BLOCK.search(name)
            if m:
                depth[m.group(1)] = max(depth.get(m.group(1), 0), int(m.group(2)) + 1)
        self.offset = {"layers": 0, "encoder": 0, "decoder": depth.get("encoder", 0)}
        self.layers = depth.get("layers", 0) + depth.get("encoder", 0) + depth.get("decoder", 0)

    def __call__(self, name: str) -> int:
        m = _BLOCK.search(name)
        if m:
            return self.offset[m.group(1)] + int(m.group(2)) + 1
        return 0 if _EMBED.search(name) else self.layers + 1

    @property
    def count(self) -> int:
        return self.layers + 2


def trainable_names(module: nn.Module, strategy: StrategyConfig) -> set[str]:
    """The parameters the strategy trains (before gradual unfreezing)."""
    named = list(module.named_parameters())
    if strategy.kind == "full":
        return {n for n, _ in named}
    norms = set()
    if strategy.kind == "adapters" and strategy.adapter_norms:
        norms = {id(p) for m in module.modules() if isinstance(m, (nn.LayerNorm, RMSNorm)) for p in m.parameters()}
    out = set()
    for name, p in named:
        if not _BODY.search(name):
            out.add(name)  # heads and mix
        elif strategy.kind == "adapters" and ("_adapter." in name or id(p) in norms):
            out.add(name)
    return out


def trainable_fraction(module: nn.Module) -> dict:
    """Trainable and total parameter counts (shared tensors once) and their ratio."""
    params = {id(p): p for p in module.parameters()}.values()
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "fraction": trainable / max(total, 1)}


class Plan:
    """A strategy applied to a module: what trains, at which learning rate, from which
    step. ``on_step(step)`` (the trainer's hook) sets ``requires_grad`` for gradual
    unfreezing; it is a pure function of the step, so a resumed run gets the same state."""

    def __init__(self, module: nn.Module, strategy: StrategyConfig, steps_per_epoch: int | None = None):
        self.module, self.strategy = module, strategy
        self.names = [n for n, _ in module.named_parameters()]
        self.groups = LayerGroups(self.names)
        self.trainable = trainable_names(module, strategy)
        self.every = strategy.unfreeze_every or max(int(steps_per_epoch or 1), 1)
        # the groups that hold something to train, top first (a tied LM head has no group of its own)
        self.order = sorted({self.groups(n) for n in self.trainable}, reverse=True)
        if not self.order:
            raise ConfigError(f"strategy.kind = {strategy.kind!r} leaves nothing to train in this model (its head "
                              "may be tied to the frozen embeddings, as a seq2seq LM head is); use kind = 'full'")
        self.notes: list[str] = []

    def lr_scale(self, name: str) -> float:
        """Discriminative learning rates: ``decay ** (L - group)``, at most 1 (heads)."""
        return self.strategy.layer_lr_decay ** max(self.groups.layers - self.groups(name), 0)

    def lowest_unfrozen(self, step: int) -> int:
        """The lowest layer group that trains at optimizer step ``step``."""
        if not self.strategy.gradual_unfreeze:
            return 0
        return self.order[min(step // self.every, len(self.order) - 1)]

    def set_trainable(self, lowest: int = 0) -> None:
        for name, p in self.module.named_parameters():
            p.requires_grad_(name in self.trainable and self.groups(name) >= lowest)

    def on_step(self, step: int) -> None:
        if self.strategy.gradual_unfreeze:
            self.set_trainable(self.lowest_unfrozen(step))
        if self.strategy.freeze_embeddings_steps:
            lowest = self.lowest_unfrozen(step)
            for name, p in self.module.named_parameters():
                if _TOKENS.search(name) and name in self.trainable:
                    p.requires_grad_(step >= self.strategy.freeze_embeddings_steps and self.groups(name) >= lowest)

    def summary(self) -> dict:
        s = self.strategy
        out: dict[str, Any] = {**trainable_fraction(self.module), "layer_groups": self.groups.count}
        if s.gradual_unfreeze:
            out["unfreeze_every"] = self.every
        if s.layer_lr_decay != 1.0:
            out["lowest_lr_scale"] = self.lr_scale("body.embed.")
        return out


def apply(module: nn.Module, strategy: StrategyConfig | dict | str | None,
          steps_per_epoch: int | None = None) -> Plan:
    """Apply ``strategy`` to a wrapped task module (or a ``MultiTaskModule``): re-initialise
    what does not transfer, freeze what does not train, attach ``lr_scale`` for layer-wise
    learning rates (read by ``build_optimizer``). Build the Trainer after this, then call
    ``plan.on_step(start)`` (the trainer also calls it before every step): the optimizer must
    hold every parameter that will ever train, so gradual unfreezing freezes after it is built."""
    strategy = as_strategy(strategy)
    for model in models_in(module):
        if strategy.scalar_mix and model.mix is None:
            raise ConfigError("strategy.scalar_mix needs the mix in the model: call prepare_model before wrap")
    plan = Plan(module, strategy, steps_per_epoch)
    if strategy.transfer_layers in ("embeddings", "none"):
        keep = strategy.transfer_layers == "embeddings"
        what = "above the embeddings (only the embeddings transfer)" if keep else "(nothing transfers: random init)"
        bodies = set()
        for model in models_in(module):
            if id(model.body) not in bodies:
                bodies.add(id(model.body))
                n = reinit(model, keep_embeddings=keep)
                plan.notes.append(f"re-initialised {n} tensors {what}")
    plan.set_trainable(0)
    if strategy.layer_lr_decay != 1.0:
        module.lr_scale = plan.lr_scale
    elif "lr_scale" in module.__dict__:
        del module.lr_scale
    return plan


# ---------------------------------------------------------------- multi-task

def share_body(model: Model) -> Model:
    """A ``Model`` over the same body (and mix) as ``model`` with its own heads table (the
    current heads, shared, until ``task.wrap`` replaces them): one encoder, one head per task."""
    shell = Model.__new__(Model)
    nn.Module.__init__(shell)
    shell.config = model.config
    for name, child in model.named_children():
        setattr(shell, name, child)
    shell.heads = nn.ModuleDict(dict(model.heads))
    for name in ("mix", "task_encoder"):  # optional parts the source model may not have
        if name not in shell._modules:
            setattr(shell, name, None)
    return shell


class MultiTaskModule(nn.Module):
    """One task module per task, all over one shared body; ``forward`` runs the batch's task."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.tasks = nn.ModuleDict(modules)

    def forward(self, batch: dict[str, Any]) -> TaskOutput:
        return self.tasks[batch["task"]](batch)


class MultiTask(Task):
    """The Task seam over several tasks: a raw batch ``{"task": name, "examples": [...]}``
    is transformed by that task and keeps its ``task`` key."""

    name = "multitask"

    def __init__(self, tasks: dict[str, Task]):
        if len(tasks) < 2:
            raise ConfigError("multi-task fine-tuning needs at least two tasks")
        self.tasks = dict(tasks)

    def transform(self, batch: dict[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        name = batch["task"]
        if isinstance(name, (list, tuple)):
            name = name[0]
        out = self.tasks[name].transform({k: v for k, v in batch.items() if k != "task"}, rng)
        out["task"] = name
        return out

    def count(self, batch: dict[str, Any]) -> int:
        return self.tasks[batch["task"]].count(batch)


class MixedSource:
    """A BatchSource that gives each optimizer step to one task's source (all with the same
    ``batch_size``). ``mode="round_robin"``: tasks in turn, task ``k`` reads its batch
    ``step // K``. ``mode="proportional"``: a task drawn with probability proportional to its
    number of examples by an rng fixed by (seed, step); it reads its own batch ``step`` (each
    task's permutation advances with the global step, so resuming is O(1))."""

    def __init__(self, sources: dict[str, Any], mode: str = "proportional", seed: int = 0):
        choice("multitask mix", mode, ("proportional", "round_robin"))
        sizes = {getattr(s, "batch_size", None) for s in sources.values()}
        if len(sizes) != 1:
            raise DataError(f"the task sources make batches of different sizes {sorted(map(str, sizes))}")
        self.sources, self.names, self.mode, self.seed = dict(sources), list(sources), mode, seed
        self.batch_size = sizes.pop()
        counts = np.array([getattr(s, "size", 1) for s in self.sources.values()], dtype=np.float64)
        self.probs = counts / counts.sum()
        self.size = int(counts.sum())
        self.steps_per_epoch = max(self.size // self.batch_size, 1)

    def task_at(self, step: int) -> tuple[str, int]:
        """(task name, that task's own step) for global step ``step``."""
        if self.mode == "round_robin":
            return self.names[step % len(self.names)], step // len(self.names)
        k = int(np.random.default_rng([self.seed, 2, step]).choice(len(self.names), p=self.probs))
        return self.names[k], step

    def batch(self, step: int, micro: int, micro_batches: int, rank: int, world: int) -> dict[str, Any]:
        name, own = self.task_at(step)
        return {"task": name, **self.sources[name].batch(own, micro, micro_batches, rank, world)}

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "size": self.size, "batch_size": self.batch_size, "tasks": len(self.names)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        mine = self.state_dict()
        for key in ("size", "batch_size", "tasks"):
            if state.get(key, mine[key]) != mine[key]:
                raise DataError(f"the checkpoint's multi-task data had {key} = {state.get(key)}, this run "
                                f"has {mine[key]}; resume with the same data sets and batch size")
        self.seed = int(state.get("seed", self.seed))


def head_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """Named parameters outside the body (heads, mix): what a frozen strategy trains."""
    return {n: p for n, p in module.named_parameters() if not _BODY.search(n)}
