"""Typed config sections: dataclasses built from plain dicts with strict key checks."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, TypeVar

from sesame.errors import ConfigError

T = TypeVar("T", bound="Section")


def closest(name: str, options) -> str:
    """A ' (did you mean `x`?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean `{match[0]}`?)" if match else ""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a simple type hint; ints widen to floats."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [_coerce(v, item, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, Section):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return hint.from_dict(value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint in (float, str) and not isinstance(value, hint):
        raise ConfigError(f"{where} must be a {hint.__name__}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r} is not a finite number; give a real value")
    return value


@dataclasses.dataclass
class Section:
    """Base of every config section. Subclasses add fields and ``validate``."""

    @classmethod
    def from_dict(cls: type[T], data: dict, where: str | None = None) -> T:
        where = where or getattr(cls, "SECTION", cls.__name__)
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = [k for k in data if k not in names]
        if unknown:
            key = unknown[0]
            raise ConfigError(
                f"unknown key `{key}` in [{where}]{closest(key, names)}; "
                f"valid keys: {', '.join(sorted(names))}"
            )
        kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        obj = cls(**kwargs)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Raise ConfigError on an impossible value or combination."""

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue  # TOML has no null; absent means default
            if isinstance(value, Section):
                value = value.to_dict()
            out[f.name] = value
        return out

    def replace(self: T, **changes) -> T:
        merged = {**self.to_dict(), **changes}
        return type(self).from_dict(merged)


def choice(where: str, value: str, options) -> None:
    """Fail unless ``value`` is one of ``options``."""
    if value not in options:
        raise ConfigError(
            f"{where} = {value!r} is not one of {', '.join(map(repr, options))}{closest(value, options)}"
        )
