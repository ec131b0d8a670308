"""The objective section: which pre-training objective or downstream task runs."""
from __future__ import annotations

import dataclasses
from typing import Any

from sesame.config.base import Section


@dataclasses.dataclass
class ObjectiveConfig(Section):
    """``name`` picks a registered objective/task; ``options`` are its own settings,
    checked by the objective when it is built."""

    SECTION = "objective"
    name: str = "mlm"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
