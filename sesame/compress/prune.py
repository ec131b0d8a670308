"""Pruning: unstructured magnitude pruning with a gradual schedule (Zhu & Gupta, 2017),
attention-head pruning by importance (Michel et al., 2019) with physical removal, and
layer removal by importance (the structured baseline).

Magnitude pruning works on the weight matrices of the blocks (attention q/k/v/out and the
feed-forward layers; embeddings and heads stay dense). The sparsity follows the cubic
schedule s(t) = s_f + (s_0 − s_f)(1 − (t − t_0)/(t_1 − t_0))³ from ``start`` to ``end``,
masks recomputed every ``every`` steps (``scope`` global: one threshold over all matrices;
layer: the same sparsity in each matrix) and applied before every optimizer step, so
pruned weights stay zero. Masks are buffers of the trained module (so they are in every
training checkpoint) and ``masks.safetensors`` beside the final model."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from sesame.config.base import Section, choice
from sesame.errors import ConfigError
from sesame.models import Model

MASKS = "masks.safetensors"


@dataclasses.dataclass
class MagnitudeConfig(Section):
    SECTION = "prune"
    sparsity: float = 0.5  # final fraction of zero weights in the pruned matrices
    scope: str = "global"  # global | layer
    initial: float = 0.0  # sparsity at ``start``
    start: int = 0  # first pruning step
    end: float = 0.7  # last pruning step, as a fraction of train.steps (or a step count when > 1)
    every: int = 10  # steps between mask updates

    def validate(self) -> None:
        choice("prune.scope", self.scope, ("global", "layer"))
        if not 0.0 <= self.initial <= self.sparsity < 1.0:
            raise ConfigError(f"prune.sparsity = {self.sparsity} must be in [prune.initial, 1)")
        if self.every < 1 or self.start < 0 or self.end <= 0:
            raise ConfigError("prune.every must be >= 1, prune.start >= 0, prune.end > 0")


def prunable(model: Model) -> dict[str, nn.Parameter]:
    """The blocks' linear weights, by parameter name."""
    return {f"body.{name}.weight": m.weight for name, m in model.body.named_modules()
            if isinstance(m, nn.Linear) and name.startswith("layers.")}


class MagnitudePruner:
    """Gradual magnitude pruning of ``model``'s block weights; masks live as buffers on
    ``holder`` (the trained module). ``on_step(step)`` is the trainer's hook."""

    def __init__(self, model: Model, cfg: MagnitudeConfig, steps: int, holder: nn.Module | None = None):
        self.cfg, self.params = cfg, prunable(model)
        self.end = int(round(cfg.end * steps)) if cfg.end <= 1 else int(cfg.end)
        if self.end <= cfg.start and cfg.sparsity > cfg.initial:
            raise ConfigError(f"prune.end (step {self.end}) must come after prune.start ({cfg.start})")
        holder = holder if holder is not None else model
        self.masks = {}
        for name, p in self.params.items():
            key = "prune_mask__" + name.replace(".", "__")
            holder.register_buffer(key, torch.ones_like(p, dtype=torch.bool))
            self.masks[name] = (holder, key)

    def mask(self, name: str) -> torch.Tensor:
        holder, key = self.masks[name]
        return getattr(holder, key)

    def target(self, step: int) -> float:
        c = self.cfg
        if step <= c.start:
            return c.initial
        if step >= self.end:
            return c.sparsity
        frac = (step - c.start) / (self.end - c.start)
        return c.sparsity + (c.initial - c.sparsity) * (1.0 - frac) ** 3

    @torch.no_grad()
    def update(self, sparsity: float) -> None:
        """New masks at ``sparsity`` (the smallest |w| set to zero)."""
        if sparsity <= 0:
            return
        if self.cfg.scope == "global":
            flat = torch.cat([p.detach().abs().flatten() for p in self.params.values()])
            k = int(sparsity * flat.numel())
            threshold = flat.kthvalue(k).values if k else None
            for name, p in self.params.items():
                if threshold is not None:
                    self._set(name, p.detach().abs() > threshold)
        else:
            for name, p in self.params.items():
                k = int(sparsity * p.numel())
                if k:
                    self._set(name, p.detach().abs() > p.detach().abs().flatten().kthvalue(k).values)

    def _set(self, name: str, mask: torch.Tensor) -> None:
        self.mask(name).copy_(mask & self.mask(name))  # a pruned weight stays pruned

    @torch.no_grad()
    def apply(self) -> None:
        for name, p in self.params.items():
            p.mul_(self.mask(name))

    def on_step(self, step: int) -> None:
        c = self.cfg
        if step >= c.start and (step - c.start) % c.every == 0 or step == self.end:
            self.update(self.target(step))
        self.apply()

    def finish(self) -> None:
        """The final sparsity, masks applied (after the last optimizer step)."""
        self.update(self.cfg.sparsity)
        self.apply()

    def report(self) -> dict:
        """Sparsity of each pruned matrix, of each layer and overall."""
        per, layers, zeros, total = {}, {}, 0, 0
        for name, p in self.params.items():
            z = int((p == 0).sum())
            per[name] = z / p.numel()
            layer = name.split(".")[2]
            a, b = layers.get(layer, (0, 0))
            layers[layer] = (a + z, b + p.numel())
            zeros, total = zeros + z, total + p.numel()
        return {"overall": zeros / max(total, 1), "layers": {k: a / b for k, (a, b) in layers.items()},
                "matrices": per}

    def state(self) -> dict[str, torch.Tensor]:
        return {name: self.mask(name).to(torch.uint8).contiguous() for name in self.params}


def write_masks(masks: dict[str, torch.Tensor], model_dir: Path) -> Path:
    """``masks.safetensors`` in ``model_dir``, written atomically."""
    path = Path(model_dir) / MASKS
    tmp = path.with_name(path.name + ".tmp")
    save_file(masks, str(tmp), metadata={"format": "pt", "library": "sesame", "what": "pruning masks, 1 = kept"})
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- pipelines

def _load(model_dir, dataset, max_train, max_eval, data_dir, options=None):
    from sesame.compress import run as R
    from sesame.pipelines import load_any

    model, tok, _ = load_any(model_dir)
    labeled = R.load_labeled(dataset, model, tok, options, max_train, max_eval, data_dir=data_dir)
    module = labeled.task.wrap(model)
    return model, tok, labeled, module


def magnitude(model_dir, dataset: str, run_dir, cfg: MagnitudeConfig | dict | None = None, train=None, *,
              max_train=None, max_eval=None, data_dir=None, progress: bool = True) -> dict:
    """Fine-tune ``model_dir`` on ``dataset`` while pruning it gradually; saves the pruned
    model (zeros in place) with ``masks.safetensors`` to ``run_dir/model``."""
    from sesame.compress import run as R

    run_dir = Path(run_dir)
    cfg = cfg if isinstance(cfg, MagnitudeConfig) else MagnitudeConfig.from_dict(dict(cfg or {}), "prune")
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    tcfg = R.train_config(train, model, len(labeled.train))
    pruner = MagnitudePruner(module.model, cfg, tcfg.steps, holder=module)
    fit, _ = R.fit(labeled.task, module, model.config, tcfg, labeled.train, run_dir, progress=progress,
                   on_step=pruner.on_step, config={"prune": cfg.to_dict(), "model": model.config.to_dict()})
    pruner.finish()
    report = pruner.report()
    out = run_dir / "model"
    R.save(module.model, tok, labeled.labels, out, {"dataset": dataset, "task": labeled.task.name,
                                                     "labels": labeled.labels, "source_model": str(model_dir),
                                                     "options": labeled.task.opts.to_dict(),
                                                     "prune": {"magnitude": cfg.to_dict()}})
    write_masks(pruner.state(), out)
    return _finish(run_dir, {"method": "magnitude", "prune": cfg.to_dict(), "train": fit, "sparsity": report,
                             "eval": R.evaluate(labeled, module.model), "size": R.size(module.model)})


def _finish(run_dir: Path, summary: dict) -> dict:
    summary["model_dir"] = str(run_dir / "model")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def heads(model_dir, dataset: str, run_dir, count: int | None = None, fraction: float | None = None, *,
          batches: int = 8, batch_size: int = 32, max_train=None, max_eval=None, data_dir=None) -> dict:
    """Score every head on ``batches`` training batches (Michel et al.), remove the ``count``
    (or ``fraction`` of all) least important physically, evaluate and save the smaller model."""
    from sesame.compress import run as R
    from sesame.compress.surgery import head_importance, layer_heads, least_important, prune_heads

    run_dir = Path(run_dir)
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    total = sum(layer_heads(model))
    if (count is None) == (fraction is None):
        raise ConfigError("give the number of heads to prune or the fraction of all heads, one of them")
    if count is None:
        if not 0 <= fraction < 1:
            raise ConfigError(f"the fraction of heads to prune must be in [0, 1), got {fraction}")
        count = int(round(fraction * total))
    before = R.size(model)
    data = [labeled.task.transform({"examples": labeled.train[i:i + batch_size]})
            for i in range(0, min(len(labeled.train), batches * batch_size), batch_size)]
    score = head_importance(module, model, data)
    chosen = least_important(score, count, layer_heads(model))
    prune_heads(model, chosen)
    out = run_dir / "model"
    R.save(model, tok, labeled.labels, out, {"dataset": dataset, "task": labeled.task.name, "labels": labeled.labels,
                                             "source_model": str(model_dir), "options": labeled.task.opts.to_dict(),
                                             "prune": {"heads": {str(k): v for k, v in chosen.items()}}})
    return _finish(run_dir, {"method": "heads", "pruned": {str(k): v for k, v in chosen.items()}, "count": count,
                             "of": total, "importance": score.masked_fill(score.isinf(), -1).tolist(),
                             "head_counts": model.config.head_counts, "size_before": before,
                             "size": R.size(model), "eval": R.evaluate(labeled, model)})


def layers(model_dir, dataset: str, run_dir, remove: int, *, batches: int = 8, batch_size: int = 32,
           max_train=None, max_eval=None, data_dir=None) -> dict:
    """Remove the ``remove`` layers whose removal alone raises the training loss least."""
    from sesame.compress import run as R
    from sesame.compress.surgery import keep_layers, layer_importance

    run_dir = Path(run_dir)
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    if not 0 < remove < model.config.layers:
        raise ConfigError(f"cannot remove {remove} of {model.config.layers} layers; "
                          f"remove 1..{model.config.layers - 1}")
    data = [labeled.task.transform({"examples": labeled.train[i:i + batch_size]})
            for i in range(0, min(len(labeled.train), batches * batch_size), batch_size)]
    scores = layer_importance(module, model, data)
    drop = sorted(sorted(range(len(scores)), key=lambda i: scores[i])[:remove])
    kept = [i for i in range(model.config.layers) if i not in drop]
    small = keep_layers(model, kept)
    out = run_dir / "model"
    R.save(small, tok, labeled.labels, out, {"dataset": dataset, "task": labeled.task.name, "labels": labeled.labels,
                                             "source_model": str(model_dir), "options": labeled.task.opts.to_dict(),
                                             "prune": {"layers_kept": kept}})
    return _finish(run_dir, {"method": "layers", "importance": scores, "removed": drop, "kept": kept,
                             "size_before": R.size(model), "size": R.size(small), "eval": R.evaluate(labeled, small)})
