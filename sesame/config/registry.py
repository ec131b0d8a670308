"""A registry of named parts: attention kernels, positions, norms, feed-forwards,
heads, objectives and tasks. A new part is one file plus one ``register`` call."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from sesame.config.base import closest
from sesame.errors import ConfigError

# Modules that register parts when imported; ``get`` imports them lazily so the
# registry itself stays at the bottom of the import graph.
_PROVIDERS: dict[str, list[str]] = {
    "attention": ["sesame.nn.attention"],
    "position": ["sesame.nn.positions"],
    "norm": ["sesame.nn.norms"],
    "feedforward": ["sesame.nn.feedforward"],
    "head": ["sesame.models.heads", "sesame.models.task_heads", "sesame.models.families.elmo"],
    "family": ["sesame.models.families"],
    "objective": ["sesame.objectives"],
    "task": ["sesame.tasks"],
}
_PARTS: dict[str, dict[str, Any]] = {kind: {} for kind in _PROVIDERS}


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator: ``@register("attention", "full")``."""
    if kind not in _PARTS:
        raise ConfigError(f"unknown part kind {kind!r}; kinds: {', '.join(_PARTS)}")

    def deco(obj):
        _PARTS[kind][name] = obj
        return obj

    return deco


def _load(kind: str) -> None:
    for module in _PROVIDERS[kind]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def get(kind: str, name: str) -> Any:
    """The part ``name`` of ``kind``; a ConfigError lists the known names."""
    if kind not in _PARTS:
        raise ConfigError(f"unknown part kind {kind!r}; kinds: {', '.join(_PARTS)}")
    if name not in _PARTS[kind]:
        _load(kind)
    if name not in _PARTS[kind]:
        known = sorted(_PARTS[kind])
        raise ConfigError(
            f"unknown {kind} {name!r}{closest(name, known)}; known: {', '.join(known) or 'none'}"
        )
    return _PARTS[kind][name]


def names(kind: str) -> list[str]:
    _load(kind)
    return sorted(_PARTS[kind])
