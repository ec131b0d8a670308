"""The tokenizer section."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section, choice


@dataclasses.dataclass
class TokenizerConfig(Section):
    SECTION = "tokenizer"
    kind: str = "wordpiece"  # wordpiece | bpe | unigram | char
    vocab_size: int = 30522
    lowercase: bool = True
    path: str | None = None  # load an existing tokenizer instead of training

    def validate(self) -> None:
        choice("tokenizer.kind", self.kind, ("wordpiece", "bpe", "unigram", "char"))
