"""The resume guard: a resumed run's config is compared with the one its checkpoint was
written under. Settings that fix the data order or the weights (any change outside
``[train]``, and ``train.seed``, ``train.batch_size``, ``train.optimizer``) cannot change
mid-run; optimisation and schedule settings (lr, steps, warmup, ...) may, but only when asked
(``--allow-config-change``), and each change is recorded with the step it took effect."""
from __future__ import annotations

from typing import Any

from sesame.errors import ConfigError

# [train] settings a run may change on resume when asked; every other [train] key below is free
SCHEDULE = ("steps", "lr", "betas", "eps", "weight_decay", "decay_embeddings", "momentum", "schedule",
            "warmup", "clip", "precision", "nan_policy", "early_stop", "micro_batch_size")
# [train] settings that only affect logging, saving or speed: never a change of the run
FREE = ("device", "threads", "eval_every", "eval_batches", "log_every", "save_every", "keep", "tensorboard",
        "compile", "deterministic", "find_unused")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def diff(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """``{"section.key": (old, new)}`` for every setting that differs (absent = None)."""
    a, b = _flat(old), _flat(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in ignore}


def _shown(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())


def check_resume(old: dict, new: dict, step: int, allow: bool, where: str = "the run",
                 ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """The allowed changes between ``old`` (the checkpoint's config) and ``new``; ConfigError
    listing the fields when a fixed setting changed, or a schedule setting without ``allow``."""
    changes = diff(old, new, ignore)
    fixed = {k: v for k, v in changes.items()
             if not k.startswith("train.") or k.split(".")[1] not in SCHEDULE + FREE}
    if fixed:
        raise ConfigError(
            f"resuming {where} with a changed config: {_shown(fixed)}. These fix the data, the model, the seed "
            "or the batch, so they cannot change mid-run; resume with the run's own config.toml, or train the "
            "new config in a new --out directory")
    schedule = {k: v for k, v in changes.items() if k.split(".")[1] in SCHEDULE}
    if schedule and not allow:
        raise ConfigError(
            f"resuming {where} at step {step} with changed optimisation settings: {_shown(schedule)}; pass "
            "--allow-config-change to apply them from this step on (recorded in state.json and config.toml), "
            "or resume with the run's own config.toml")
    return schedule


def history_comment(history: list[dict]) -> str:
    """TOML comment lines recording each accepted change and its step (for config.toml)."""
    lines = []
    for h in history:
        shown = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in h["changes"].items())
        lines.append(f"# config history: from step {h['step']}: {shown} (resumed with --allow-config-change)")
    return "".join(line + "\n" for line in lines)
