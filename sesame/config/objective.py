"""The objective section: which pre-training objective(s) or downstream task runs.

One objective: ``name = "mlm"`` with its settings in ``[objective.options]``.
Several objectives trained together on one transformed batch (BERT's MLM + NSP,
ALBERT's MLM + SOP, SpanBERT's MLM + SBO), either as a list of names, each part's
settings under ``[objective.options.<part>]`` and optional ``weights``::

    [objective]
    name = ["mlm", "nsp"]
    weights = [1.0, 1.0]
    [objective.options.mlm]
    unit = "word"

or as ``[[objective.parts]]`` tables with ``name``, ``weight`` and ``options``."""
from __future__ import annotations

import dataclasses
from typing import Any

from sesame.config.base import Section
from sesame.errors import ConfigError


@dataclasses.dataclass
class Part:
    name: str
    weight: float = 1.0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ObjectiveConfig(Section):
    """``name`` picks a registered objective (or a list of them); ``options`` are its own
    settings, checked by the objective when it is built; ``weights`` scale the parts of a
    list; ``parts`` is the table form of a list."""

    SECTION = "objective"
    name: str | list[str] = "mlm"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: list[float] | None = None
    parts: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        parts = self.resolved()
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ConfigError(f"objective parts {names} name one objective twice; list each once")
        for p in parts:
            if p.weight <= 0:
                raise ConfigError(f"objective part {p.name!r} has weight {p.weight}; weights must be positive")
        if len(parts) == 1 and parts[0].weight != 1.0:
            raise ConfigError(f"a weight scales one objective against others, but {names[0]!r} is trained alone "
                              f"(weight {parts[0].weight}); drop the weight (or change train.lr)")

    def resolved(self) -> list[Part]:
        """The parts to train, in order (a single objective is one part of weight 1)."""
        if self.parts:
            if self.name != "mlm" or self.options or self.weights is not None:
                raise ConfigError("give the objectives either as [[objective.parts]] tables or as "
                                  "objective.name (+ options, weights), not both")
            out = []
            for i, table in enumerate(self.parts):
                unknown = [k for k in table if k not in ("name", "weight", "options")]
                if unknown or "name" not in table:
                    raise ConfigError(f"[[objective.parts]] #{i + 1}: each part has `name` and optional "
                                      f"`weight` and `options`; got keys {sorted(table)}")
                weight = table.get("weight", 1.0)
                if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                    raise ConfigError(f"[[objective.parts]] #{i + 1}: weight must be a number, got {weight!r}")
                options = table.get("options", {})
                if not isinstance(options, dict):
                    raise ConfigError(f"[[objective.parts]] #{i + 1}: options must be a table")
                out.append(Part(str(table["name"]), float(weight), dict(options)))
            return out
        if isinstance(self.name, str):
            if self.weights is not None:
                raise ConfigError("objective.weights is for a list of objectives; "
                                  f"objective.name = {self.name!r} is one")
            return [Part(self.name, 1.0, dict(self.options))]
        names = list(self.name)
        if not names:
            raise ConfigError("objective.name is an empty list; name at least one objective")
        weights = self.weights if self.weights is not None else [1.0] * len(names)
        if len(weights) != len(names):
            raise ConfigError(f"objective.weights has {len(weights)} values for {len(names)} objectives {names}")
        stray = [k for k in self.options if k not in names]
        if stray:
            raise ConfigError(
                f"with several objectives, objective.options holds one table per part "
                f"([objective.options.{names[0]}]); {stray[0]!r} is not one of {names}"
            )
        out = []
        for n, w in zip(names, weights):
            opts = self.options.get(n, {})
            if not isinstance(opts, dict):
                raise ConfigError(f"objective.options.{n} must be a table of that part's settings")
            out.append(Part(n, float(w), dict(opts)))
        return out

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.resolved()]
