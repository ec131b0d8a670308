"""The data section."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section


@dataclasses.dataclass
class DataConfig(Section):
    SECTION = "data"
    inputs: list[str] = dataclasses.field(default_factory=list)
    seq_len: int = 128
