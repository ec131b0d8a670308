"""LayerDrop (Fan et al., 2019) and BERT-of-Theseus module replacing (Xu et al., 2020).

LayerDrop is ``model.layerdrop``: in training the stack skips each layer with that
probability; at inference any subset of layers can be kept without retraining
(``surgery.keep_layers``, e.g. every other layer). ``layerdrop`` fine-tunes with it and
reports the metric at each depth kept.

Theseus: a successor of ``n`` blocks, block g replacing predecessor blocks g·k..g·k+k−1.
While training, each predecessor module is replaced by its successor with probability
``p`` (constant, or the linear curriculum p = min(1, p0 + rate·t)); only the successor
blocks train (the predecessor's blocks, embeddings and heads are frozen, as in the
paper). Then the successor, a plain ``Model`` of ``n`` layers with the predecessor's
embeddings and heads, is fine-tuned alone."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from sesame.errors import ConfigError
from sesame.models import Model, build_model
from sesame.models.io import load_state


class TheseusStack(nn.Module):
    """Stands in for ``model.body.layers``: predecessor blocks and successor blocks."""

    def __init__(self, predecessor: nn.ModuleList, successor: nn.ModuleList, p: float = 0.5):
        super().__init__()
        if len(predecessor) % len(successor):
            raise ConfigError(f"a successor of {len(successor)} modules cannot replace {len(predecessor)} layers "
                              "evenly; choose a successor depth that divides the predecessor's")
        self.pred, self.succ, self.p = predecessor, successor, p
        self.k = len(predecessor) // len(successor)
        self.depth = len(predecessor)

    def forward(self, x, ctx, cache=None, hidden_states: list | None = None):
        if cache is not None:
            raise ConfigError("a Theseus compound model is for training; decode with the successor")
        n = len(self.succ)
        use = (torch.rand(n) < self.p).tolist() if self.training and self.p < 1 else [True] * n
        for g in range(n):
            blocks = [self.succ[g]] if use[g] else [self.pred[j] for j in range(g * self.k, (g + 1) * self.k)]
            for block in blocks:
                x = block(x, ctx)
            if hidden_states is not None:
                hidden_states.append(x)
        if self.training and not any(use):  # nothing replaced: the frozen predecessor alone, so the
            # step's gradient is zero; a zero-valued path keeps the loss differentiable for backward
            x = x + 0.0 * sum(param.sum() for param in self.succ.parameters())
        return x


def compound(predecessor: Model, layers: int, p: float = 0.5) -> Model:
    """Turn ``predecessor`` (in place) into a Theseus compound with a successor of ``layers``
    blocks initialised from its first ``layers`` blocks; everything else is frozen."""
    cfg = predecessor.config
    if cfg.arch == "encoder-decoder" or cfg.share_layers or predecessor.mix is not None:
        raise ConfigError("module replacing needs an encoder or decoder with unshared layers and no scalar mix")
    if not 0 < layers < cfg.layers:
        raise ConfigError(f"the successor needs 1..{cfg.layers - 1} layers, got {layers}")
    pred = predecessor.body.layers
    succ = nn.ModuleList(copy.deepcopy(pred[i]) for i in range(layers))
    for param in predecessor.parameters():
        param.requires_grad_(False)
    for param in succ.parameters():
        param.requires_grad_(True)
    predecessor.body.layers = TheseusStack(pred, succ, p)
    return predecessor


def successor(model: Model) -> Model:
    """The plain smaller model: the compound's successor blocks, embeddings and heads."""
    stack = model.body.layers
    if not isinstance(stack, TheseusStack):
        raise ConfigError("successor() takes a Theseus compound model (see compound)")
    counts = model.config.head_counts
    config = model.config.replace(layers=len(stack.succ))
    if counts is not None:
        config = config.replace(head_counts=[counts[i] for i in range(len(stack.succ))])
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("body.layers.succ."):
            state["body.layers." + key[len("body.layers.succ."):]] = value
        elif not key.startswith("body.layers."):
            state[key] = value
    out = build_model(config)
    load_state(out, {k: v for k, v in state.items() if k not in out.ties()})
    return out.train(model.training)


def curriculum(p0: float, rate: float):
    """p(t) = min(1, p0 + rate·t); rate 0: constant p0."""
    return lambda step: min(1.0, p0 + rate * step)


# ---------------------------------------------------------------- pipelines

def _summary(run_dir: Path, summary: dict) -> dict:
    summary["model_dir"] = str(run_dir / "model")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def theseus(model_dir, dataset: str, run_dir, layers: int, p: float = 0.5, rate: float = 0.0, train=None,
            successor_train=None, *, max_train=None, max_eval=None, data_dir=None, progress: bool = True) -> dict:
    """Module replacing on ``dataset`` (task loss only), then the successor fine-tuned alone;
    the successor is saved to ``run_dir/model``."""
    from sesame.compress import run as R
    from sesame.compress.prune import _load

    run_dir = Path(run_dir)
    if not 0 < p <= 1 or rate < 0:
        raise ConfigError(f"replacing probability p = {p} must be in (0, 1] and its rate >= 0")
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    compound(model, layers, p)
    stack = model.body.layers
    schedule = curriculum(p, rate)
    tcfg = R.train_config(train, model, len(labeled.train))

    def on_step(step):
        stack.p = schedule(step)

    fit1, _ = R.fit(labeled.task, module, model.config, tcfg, labeled.train, run_dir / "replace", progress=progress,
                    on_step=on_step, config={"theseus": {"layers": layers, "p": p, "rate": rate}})
    small = successor(model)
    small_module = labeled.task.module_class(small)
    scfg = R.train_config(successor_train if successor_train is not None else train, small, len(labeled.train))
    fit2, _ = R.fit(labeled.task, small_module, small.config, scfg, labeled.train, run_dir / "successor",
                    progress=progress, config={"model": small.config.to_dict()})
    out = run_dir / "model"
    R.save(small, tok, labeled.labels, out, {"dataset": dataset, "task": labeled.task.name, "labels": labeled.labels,
                                             "source_model": str(model_dir), "options": labeled.task.opts.to_dict(),
                                             "theseus": {"layers": layers, "p": p, "rate": rate}})
    return _summary(run_dir, {"method": "theseus", "replace": fit1, "successor": fit2, "size": R.size(small),
                              "eval": R.evaluate(labeled, small)})


def layerdrop(model_dir, dataset: str, run_dir, rate: float, train=None, keep: list[list[int]] | None = None, *,
              max_train=None, max_eval=None, data_dir=None, progress: bool = True) -> dict:
    """Fine-tune with LayerDrop at ``rate``, then evaluate the full depth and each subset in
    ``keep`` (default: every other layer, starting at 0 and at 1); saves the first subset's
    plain model to ``run_dir/model`` and the full one to ``run_dir/full``."""
    from sesame.compress import run as R
    from sesame.compress.prune import _load
    from sesame.compress.surgery import every_other, keep_layers

    run_dir = Path(run_dir)
    model, tok, labeled, module = _load(model_dir, dataset, max_train, max_eval, data_dir)
    model.config = model.config.replace(layerdrop=rate)
    model.body.layers.layerdrop = rate
    tcfg = R.train_config(train, model, len(labeled.train))
    fit, _ = R.fit(labeled.task, module, model.config, tcfg, labeled.train, run_dir, progress=progress,
                   config={"model": model.config.to_dict()})
    model.config = model.config.replace(layerdrop=0.0)
    model.body.layers.layerdrop = 0.0
    depth = model.config.layers
    keep = keep or [every_other(depth, 0), every_other(depth, 1)]
    record = {"dataset": dataset, "task": labeled.task.name, "labels": labeled.labels, "source_model": str(model_dir),
              "options": labeled.task.opts.to_dict(), "layerdrop": rate}
    results = {"all": {"layers": list(range(depth)), "eval": R.evaluate(labeled, model), "size": R.size(model)}}
    R.save(model, tok, labeled.labels, run_dir / "full", record)
    for i, subset in enumerate(keep):
        small = keep_layers(model, subset)
        results["+".join(map(str, subset))] = {"layers": subset, "eval": R.evaluate(labeled, small),
                                               "size": R.size(small)}
        if i == 0:
            R.save(small, tok, labeled.labels, run_dir / "model", {**record, "layers_kept": subset})
    return _summary(run_dir, {"method": "layerdrop", "rate": rate, "train": fit, "depths": results})
