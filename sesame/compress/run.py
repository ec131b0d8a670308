"""What the compression pipelines share: a labeled data set read the way ``finetune``
reads it, a training run of any task module through the generic trainer, evaluation,
saving a plain model with its tokenizer and labels, and the size of a model."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from sesame import finetune as ft
from sesame.config.registry import get
from sesame.config.train import TrainConfig
from sesame.errors import ConfigError
from sesame.models import Model
from sesame.outputs import claim_run_dir, model_outputs
from sesame.pretrain import RUN_OUTPUTS
from sesame.train import ArraySource, Trainer
from sesame.transfer import as_strategy

# what distill / prune / quantize write into their --out; --overwrite replaces these, keeps the rest
OUTPUTS = (*RUN_OUTPUTS, *model_outputs("full"), "summary.json", "replace", "successor")


@dataclasses.dataclass
class Labeled:
    """A labeled data set bound to a task: the task object, its training examples and
    the evaluation splits (dev, and test when there is one)."""

    dataset: str
    task: object
    train: list
    evals: dict
    labels: list[str]
    notes: list[str]


def claim_out(out: str | Path, overwrite: bool = False) -> Path:
    """A compression run's --out under the one overwrite policy (outputs.claim_run_dir)."""
    return claim_run_dir(out, resume=False, overwrite=overwrite, own=OUTPUTS, resumable=False)


def load_labeled(dataset: str, model: Model, tok, options: dict | None = None, max_train: int | None = None,
                 max_eval: int | None = None, seed: int = 0, data_dir=None, splits=("train",)) -> Labeled:
    spec = ft.dataset_spec(dataset)
    train = ft.read_split(dataset, "train", data_dir) if "train" in splits else None
    evals = ft._eval_splits(dataset, "dev", data_dir, max_eval, seed)
    labels = ft.merged_labels(spec.task, [train, *evals.values()])
    opts, notes = ft.task_options(spec, options, model.config)
    task = get("task", spec.task)(tok, labels or None, opts)
    examples = ft.subsample(train.examples, max_train, seed) if train is not None else []
    return Labeled(dataset, task, examples, evals, labels, notes)


def train_config(given: TrainConfig | dict | None, model: Model, n_train: int) -> TrainConfig:
    return ft.resolve_train(given, model.config, as_strategy(None), n_train)


def fit(task, module: nn.Module, model_config, cfg: TrainConfig, examples: list, run_dir: str | Path,
        dev: list | None = None, progress: bool = True, on_step: Callable[[int], None] | None = None,
        config: dict | None = None, resume: bool = False) -> tuple[dict, Trainer]:
    """Train ``module`` (built around the models it holds) on ``examples``; returns the
    trainer's summary and the (closed) trainer, whose ``.module`` is the trained module."""
    if len(examples) < cfg.batch_size:
        raise ConfigError(f"{len(examples)} training examples cannot fill one batch of train.batch_size = "
                          f"{cfg.batch_size}; lower the batch size or raise max_train")
    source = ArraySource([{"examples": ex} for ex in examples], cfg.batch_size, seed=cfg.seed)
    eval_source = None
    if cfg.eval_every and dev:
        eval_source = ArraySource([{"examples": ex} for ex in dev], min(len(dev), cfg.batch_size), seed=cfg.seed,
                                  shuffle=False)
    trainer = Trainer(task, model_config, cfg, source, run_dir, eval_source, module, progress=progress,
                      on_step=on_step, config={"train": cfg.to_dict(), **(config or {})})
    try:
        summary = trainer.fit(resume=resume)
    finally:
        trainer.close()
    return summary, trainer


def evaluate(labeled: Labeled, model: Model, batch_size: int = 32, report_dir: Path | None = None) -> dict:
    """Metrics of ``model`` (with the task's head) on each evaluation split."""
    module = labeled.task.module_class(model)
    out = {}
    for name, data in labeled.evals.items():
        r = labeled.task.evaluate(module, data.examples, batch_size, report_dir=report_dir, name=name)
        out[name] = {"examples": r["examples"], "metrics": r["metrics"]}
    return out


def save(model: Model, tok, labels: list[str], out: Path, record: dict, extra: dict | None = None) -> Path:
    """A plain model directory: weights, config, tokenizer, labels, the run record (+ ``extra`` files)."""
    from sesame.models import save_model

    files = {ft.TOKENIZER: tok.to_json(), ft.LABELS: json.dumps(labels, ensure_ascii=False),
             ft.RECORD: json.dumps(record, indent=2, ensure_ascii=False, default=str), **(extra or {})}
    return save_model(model, out, extra=files)


def size(model: nn.Module) -> dict:
    """Parameters (all, and non-zero) of a model."""
    seen, total, nonzero = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    return {"parameters": total, "nonzero_parameters": nonzero}


def primary(metrics: dict) -> tuple[str, float]:
    """The headline metric of a task's results: accuracy (classification) or f1 (tagging)."""
    for name in ("accuracy", "f1", "exact_match", "bleu"):
        if name in metrics:
            if name == "accuracy" and "f1" in metrics:
                return "f1", metrics["f1"]
            return name, metrics[name]
    name = sorted(metrics)[0]
    return name, metrics[name]
