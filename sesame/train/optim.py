"""Optimizers: AdamW (fused where the device supports it), LAMB and SGD, with
parameter groups that keep weight decay off biases, norms and (optionally)
embedding tables."""
from __future__ import annotations

import math

import torch
from torch import nn

from sesame.config.train import TrainConfig


def param_groups(module: nn.Module, weight_decay: float, decay_embeddings: bool = True,
                 lr_scale=None, lr: float | None = None) -> list[dict]:
    """Two groups: parameters with ndim >= 2 get ``weight_decay``; biases and norm weights
    (ndim < 2) and, unless ``decay_embeddings``, embedding tables get none. Shared (tied)
    parameters appear once. Each group carries the parameter names under ``names``.
    ``lr_scale(name) -> float`` (e.g. layer-wise learning rates) splits the groups further
    by scale; each such group gets ``lr = lr * scale`` and records ``lr_scale``."""
    embeddings = set()
    if not decay_embeddings:
        embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    buckets: dict[tuple[bool, float], tuple[list, list]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        key = (p.ndim >= 2 and id(p) not in embeddings, float(lr_scale(name)) if lr_scale else 1.0)
        target = buckets.setdefault(key, ([], []))
        target[0].append(name)
        target[1].append(p)
    groups = []
    for (decays, scale), (ns, ps) in sorted(buckets.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        group = {"params": ps, "names": ns, "weight_decay": weight_decay if decays else 0.0}
        if lr_scale is not None:
            group.update(lr_scale=scale, **({"lr": lr * scale} if lr is not None else {}))
        groups.append(group)
    return groups


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning", Algorithm 2):
    Adam moments with bias correction, decoupled weight decay added to the update, and a
    layer-wise trust ratio ``||x|| / ||r + wd * x||`` (1 where either norm is zero)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, bias_correction: bool = True):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
                else:
                    m_hat, v_hat = m, v
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p.float(), alpha=group["weight_decay"])
                w_norm, u_norm = p.float().norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_((update * trust * -group["lr"]).to(p.dtype))
        return loss


def _adamw(groups, cfg: TrainConfig, device: torch.device):
    kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


def build_optimizer(module: nn.Module, cfg: TrainConfig, device: torch.device | str = "cpu", lr_scale=None):
    """The optimizer ``cfg.optimizer`` names, over ``param_groups(module, ...)``. ``lr_scale``
    (default: the module's own ``lr_scale`` attribute, if any) scales each parameter's lr."""
    device = torch.device(device)
    lr_scale = lr_scale or getattr(module, "lr_scale", None)
    groups = param_groups(module, cfg.weight_decay, cfg.decay_embeddings, lr_scale, cfg.lr)
    if cfg.optimizer == "adamw":
        return _adamw(groups, cfg, device)
    if cfg.optimizer == "lamb":
        return Lamb(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, foreach=True)


def lr_factor(step: int, schedule: str, warmup: int, total: int) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based): linear
    warmup over ``warmup`` steps, then linear or cosine decay to 0 at ``total``, inverse
    square root decay, or constant."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / (step + 1))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


class Schedule:
    """Sets each group's lr for a step; stateless (a pure function of the step), so resuming
    needs only the step. ``state_dict`` exists for the record in state.json."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig):
        self.optimizer, self.name, self.warmup, self.total = optimizer, cfg.schedule, cfg.warmup, cfg.steps
        self.base = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, base in zip(optimizer.param_groups, self.base):
            g["initial_lr"] = base

    def apply(self, step: int) -> float:
        factor = lr_factor(step, self.name, self.warmup, self.total)
        for g, base in zip(self.optimizer.param_groups, self.base):
            g["lr"] = base * factor
        return self.base[0] * factor

    def state_dict(self) -> dict:
        return {"schedule": self.name, "warmup": self.warmup, "total": self.total, "base_lrs": self.base}
