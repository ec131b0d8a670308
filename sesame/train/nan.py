"""Finding where a NaN or Inf came from. Normal steps pay nothing: only after a
step's loss or gradient norm is non-finite does the trainer re-run the offending
micro-batches here, with forward hooks on every module, to name the first module
whose output is non-finite (or, when the forward pass is clean, the parameters
whose gradients are)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from sesame.errors import SesameError


class NonFiniteError(SesameError):
    """The loss or a gradient became NaN or Inf (train.nan_policy = "stop")."""


@dataclasses.dataclass
class NonFiniteReport:
    step: int  # 1-based optimizer step
    micro: int | None  # micro-batch index within the step (this rank), None if not pinned down
    where: str  # what is non-finite: "loss", "gradient", "input"
    module: str | None = None  # first module with a non-finite output
    params: list[str] = dataclasses.field(default_factory=list)  # parameters with non-finite grads
    rank: int = 0

    def __str__(self) -> str:
        at = f"step {self.step}" + (f", micro-batch {self.micro}" if self.micro is not None else "")
        if self.rank:
            at += f", rank {self.rank}"
        if self.module is not None:
            what = f"module `{self.module or '(root)'}` is the first with a non-finite output"
        elif self.params:
            shown = ", ".join(self.params[:5]) + (" ..." if len(self.params) > 5 else "")
            what = f"the forward pass is finite but gradients of {shown} are not"
        elif self.where == "input":
            what = "the batch itself holds non-finite values"
        else:
            what = f"non-finite {self.where} (source not found; it may come from another rank)"
        return (f"NaN/Inf at {at}: {what}; lower train.lr, keep train.clip > 0, check the data, or set "
                'train.nan_policy = "skip" to skip such steps')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _tensors(getattr(value, f.name))


def nonfinite(value: Any) -> bool:
    return any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in _tensors(value))


def first_nonfinite_module(module: nn.Module, run: Callable[[], Any]) -> str | None:
    """Run ``run()`` with forward hooks on every submodule; the name of the first module (in
    completion order, so the innermost culprit) whose output holds a NaN or Inf."""
    found: list[str] = []
    names = {m: n for n, m in module.named_modules()}

    def hook(mod, args, output):
        if not found and nonfinite(output):
            found.append(names[mod])

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def diagnose(module: nn.Module, batches: list[dict], forward: Callable[[dict], Any], step: int,
             rank: int = 0) -> NonFiniteReport:
    """Re-run each micro-batch of a failed step through ``module`` (the bare module, not a DDP
    wrapper) to find the first non-finite output, then, if none, the non-finite gradients.
    ``forward(batch)`` runs the module under the step's autocast and returns its TaskOutput."""
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for i, batch in enumerate(batches):
        if nonfinite(batch):
            return NonFiniteReport(step, i, "input", rank=rank)
        out: list = []
        with torch.no_grad():
            culprit = first_nonfinite_module(module, lambda b=batch, o=out: o.append(forward(b)))
        if culprit is not None or nonfinite(out[0].loss):
            return NonFiniteReport(step, i, "loss", module=culprit or "", rank=rank)
    for i, batch in enumerate(batches):
        with torch.enable_grad():
            loss = forward(batch).loss.float()
            grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        bad = [n for (n, _), g in zip(params, grads) if g is not None and not bool(torch.isfinite(g).all())]
        if bad:
            return NonFiniteReport(step, i, "gradient", params=bad, rank=rank)
    return NonFiniteReport(step, None, "gradient", rank=rank)
