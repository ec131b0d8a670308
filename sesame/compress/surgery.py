"""Structural edits of a built ``Model``: keep a subset of its layers (DistilBERT's
every-other-layer student, LayerDrop's pruned inference, layer removal), mask attention
heads, measure head importance (Michel et al., 2019) and remove heads physically.

Every edit returns or leaves a plain ``Model`` whose config describes it exactly
(``model.layers``, ``model.head_counts``), so it saves, loads and fine-tunes like any other."""
from __future__ import annotations

import contextlib
from typing import Iterable, Sequence

import torch
from torch import nn

from sesame.errors import ConfigError
from sesame.models import Model, build_model
from sesame.models.io import load_state


def layer_heads(model: Model) -> list[int]:
    """Attention heads in each layer."""
    return [block.attn.heads for block in model.body.layers]


def _check_plain(model: Model, what: str) -> None:
    cfg = model.config
    if cfg.arch == "encoder-decoder" or cfg.share_layers:
        raise ConfigError(f"{what} needs an encoder or decoder with unshared layers; the model is "
                          f"{cfg.arch}{' with shared layers' if cfg.share_layers else ''}")


def keep_layers(model: Model, keep: Sequence[int]) -> Model:
    """A new model with only the blocks ``keep`` (in that order), everything else copied."""
    _check_plain(model, "keeping a subset of layers")
    depth = model.config.layers
    keep = list(keep)
    if not keep or any(not 0 <= i < depth for i in keep) or len(set(keep)) != len(keep):
        raise ConfigError(f"layers to keep {keep} must be distinct indices in 0..{depth - 1}, at least one")
    counts = model.config.head_counts
    config = model.config.replace(layers=len(keep))
    if counts is not None:
        config = config.replace(head_counts=[counts[i] for i in keep])
    if model.mix is not None:
        raise ConfigError("a model with a scalar mix over its layers cannot drop layers; fine-tune without it")
    state = {}
    wide = {f"body.layers.0.attn.kernel.{n}" for n in model.body.layers[0].attn.kernel.model_wide}
    for key, value in model.state_dict().items():
        if key in wide:  # held by layer 0 for every layer (Linformer share = "layers"): stays with layer 0
            state[key] = value
        elif key.startswith("body.layers."):
            index, rest = key[len("body.layers."):].split(".", 1)
            if int(index) in keep:
                state[f"body.layers.{keep.index(int(index))}.{rest}"] = value
        else:
            state[key] = value
    out = build_model(config)
    load_state(out, {k: v for k, v in state.items() if k not in out.ties()})
    return out.train(model.training)


def every_other(depth: int, start: int = 0) -> list[int]:
    """Layers start, start + 2, ... (DistilBERT's student init, LayerDrop's half-depth)."""
    return list(range(start, depth, 2))


def check_head_mask(model: Model, mask: torch.Tensor) -> None:
    heads = layer_heads(model)
    if mask.dim() != 2 or mask.shape[0] != len(heads) or mask.shape[1] < max(heads):
        raise ConfigError(f"a head mask must be (layers, heads) = ({len(heads)}, {max(heads)}), "
                          f"got {tuple(mask.shape)}")


@contextlib.contextmanager
def head_mask(model: Model, mask: torch.Tensor):
    """Within the block, each layer's attention output of head h is multiplied by
    ``mask[layer, h]`` (before the output projection). A mask that requires grad gives
    the gradients Michel et al. score heads with."""
    check_head_mask(model, mask)
    handles = []
    for i, block in enumerate(model.body.layers):
        attn = block.attn

        def hook(module, args, i=i, attn=attn):
            x = args[0]
            shape = x.shape
            x = x.view(*shape[:-1], attn.heads, attn.dim) * mask[i, : attn.heads, None].to(x.dtype)
            return (x.view(shape),)

        handles.append(attn.out.register_forward_pre_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def head_importance(module: nn.Module, model: Model, batches: Iterable[dict], normalize: bool = True) -> torch.Tensor:
    """Michel et al.'s importance: |d loss / d mask[layer, head]| summed over ``batches``
    (each run through ``module``, a task module whose ``forward(batch)`` returns a
    ``TaskOutput``), at mask = 1. ``normalize``: each layer's scores divided by their L2 norm
    (as in the paper's experiments). Returns (layers, max heads); absent heads score inf."""
    heads = layer_heads(model)
    mask = torch.ones(len(heads), max(heads), requires_grad=True)
    score = torch.zeros(len(heads), max(heads))
    was = module.training
    module.eval()
    with head_mask(model, mask):
        for batch in batches:
            out = module(batch)
            count = out.count if isinstance(out.count, int) else int(out.count)
            grad, = torch.autograd.grad(out.loss / max(count, 1), mask)
            score += grad.abs().detach()
    module.train(was)
    model.zero_grad(set_to_none=True)
    if normalize:
        score = score / score.norm(dim=1, keepdim=True).clamp(min=1e-20)
    for i, h in enumerate(heads):
        score[i, h:] = float("inf")
    return score


def least_important(score: torch.Tensor, count: int, heads: Sequence[int]) -> dict[int, list[int]]:
    """The ``count`` lowest-scoring heads over the model, never a layer's last head."""
    total = sum(heads)
    if count >= total or count < 0:
        raise ConfigError(f"cannot prune {count} heads: the model has {total} attention heads "
                          f"({', '.join(map(str, heads))} per layer) and each layer keeps at least one")
    order = torch.argsort(score.flatten(), stable=True).tolist()
    left, chosen = list(heads), {}
    for flat in order:
        if sum(len(v) for v in chosen.values()) == count:
            break
        layer, head = divmod(flat, score.shape[1])
        if head < heads[layer] and left[layer] > 1:
            chosen.setdefault(layer, []).append(head)
            left[layer] -= 1
    if sum(len(v) for v in chosen.values()) < count:
        raise ConfigError(f"cannot prune {count} heads while keeping one head in each of the {len(heads)} layers")
    return {k: sorted(v) for k, v in sorted(chosen.items())}


def _rows(heads: Sequence[int], dim: int, offset: int = 0) -> torch.Tensor:
    return torch.cat([torch.arange(offset + h * dim, offset + (h + 1) * dim) for h in heads])


@torch.no_grad()
def prune_heads(model: Model, prune: dict[int, Sequence[int]]) -> Model:
    """Remove heads ``prune[layer]`` physically: the fused q/k/v projection loses their
    rows, the output projection their columns; ``model.config.head_counts`` records the
    new counts. In place; returns the model."""
    _check_plain(model, "head pruning")
    if model.config.kv_heads != model.config.num_heads:
        raise ConfigError("head pruning of grouped-query attention (num_kv_heads < num_heads) is not supported")
    if model.config.attention != "full":
        raise ConfigError(f"head pruning is built for model.attention = 'full'; this model uses "
                          f"{model.config.attention!r}, whose kernel may hold per-head state")
    counts = layer_heads(model)
    for layer, heads in prune.items():
        if not 0 <= layer < len(counts):
            raise ConfigError(f"layer {layer} does not exist; the model has {len(counts)} layers")
        bad = sorted(set(h for h in heads if not 0 <= h < counts[layer]))
        if bad:
            raise ConfigError(f"layer {layer} has {counts[layer]} heads; cannot prune head(s) {bad}")
        if len(set(heads)) >= counts[layer]:
            raise ConfigError(f"pruning {len(set(heads))} of layer {layer}'s {counts[layer]} heads would leave "
                              "none; keep at least one head per layer (or remove the layer)")
    for layer, heads in prune.items():
        attn = model.body.layers[layer].attn
        keep = [h for h in range(attn.heads) if h not in set(heads)]
        n, d = attn.heads, attn.dim
        rows = torch.cat([_rows(keep, d, 0), _rows(keep, d, n * d), _rows(keep, d, 2 * n * d)])
        qkv = nn.Linear(attn.qkv.in_features, len(rows), bias=attn.qkv.bias is not None)
        qkv.weight.copy_(attn.qkv.weight[rows])
        if attn.qkv.bias is not None:
            qkv.bias.copy_(attn.qkv.bias[rows])
        cols = _rows(keep, d)
        out = nn.Linear(len(cols), attn.out.out_features, bias=attn.out.bias is not None)
        out.weight.copy_(attn.out.weight[:, cols])
        if attn.out.bias is not None:
            out.bias.copy_(attn.out.bias)
        param = attn.qkv.weight
        attn.qkv, attn.out = qkv.to(param), out.to(param)
        attn.heads = attn.kv_heads = len(keep)
        attn.sizes = [len(keep) * d] * 3
        counts[layer] = len(keep)
    model.config = model.config.replace(head_dim=model.config.dim_per_head, head_counts=counts)
    return model


@torch.no_grad()
def layer_importance(module: nn.Module, model: Model, batches: list[dict]) -> list[float]:
    """How much the loss rises when each layer alone is skipped (its block made the identity),
    averaged over ``batches``: the structured baseline's criterion."""
    _check_plain(model, "layer importance")
    was = module.training
    module.eval()

    def mean_loss() -> float:
        total, count = 0.0, 0
        for batch in batches:
            out = module(batch)
            total += float(out.loss)
            count += int(out.count)
        return total / max(count, 1)

    base = mean_loss()
    scores = []
    for block in model.body.layers:
        handle = block.register_forward_hook(lambda mod, args, out: args[0])
        try:
            scores.append(mean_loss() - base)
        finally:
            handle.remove()
    module.train(was)
    return scores
