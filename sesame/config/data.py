"""The data section: how raw text becomes corpus shards, and how shards become examples."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section, choice
from sesame.errors import ConfigError

FORMATS = ("auto", "text", "jsonl", "tsv", "tagged", "conll")
BOUNDARIES = ("auto", "blank", "line", "file")
SENTENCES = ("rules", "line", "none")
SEGMENTERS = ("auto", "jieba", "gold", "none")
EXAMPLES = ("packed", "document", "sentence", "nsp", "sop")


@dataclasses.dataclass
class DataConfig(Section):
    """Preparation (``inputs`` -> shards in ``out``) and example building (``seq_len``).

    ``format``: ``auto`` picks by extension (.jsonl, .tsv, else text); ``tagged`` is
    ``word/tag`` text such as People's Daily; ``conll`` is one token per line with the
    NER tag in the last column. ``doc_boundary``: ``blank`` (a blank line ends a
    document), ``line`` (one per line), ``file`` (one per file), ``auto`` (blank when the
    file has blank lines, else line). ``segmenter``: Chinese word boundaries; ``auto``
    uses gold words when the format has them, else jieba for text with CJK characters.
    ``entities``: a phrase lexicon (``phrase[<TAB>type]`` per line) whose matches become
    entity spans, beside the spans that tagged and CoNLL inputs carry.
    """

    SECTION = "data"
    inputs: list[str] = dataclasses.field(default_factory=list)
    out: str | None = None
    tokenizer: str | None = None
    format: str = "auto"
    text_field: str = "text"
    column: int | str = 0
    extensions: list[str] | None = None
    doc_boundary: str = "auto"
    sentences: str = "rules"
    segmenter: str = "auto"
    user_dict: str | None = None
    entities: str | None = None
    dedup: bool = False
    workers: int = 1
    shard_mb: float = 64.0
    seq_len: int = 128
    # training-side: a prepared corpus and what one example is
    corpus: str | None = None
    examples: str = "packed"

    def validate(self) -> None:
        choice("data.format", self.format, FORMATS)
        choice("data.doc_boundary", self.doc_boundary, BOUNDARIES)
        choice("data.sentences", self.sentences, SENTENCES)
        choice("data.segmenter", self.segmenter, SEGMENTERS)
        choice("data.examples", self.examples, EXAMPLES)
        if self.seq_len < 8:
            raise ConfigError(f"data.seq_len = {self.seq_len} is too short; use at least 8")
        if self.workers < 0:
            raise ConfigError("data.workers must be >= 0 (0 or 1 runs in this process)")
        if self.shard_mb <= 0:
            raise ConfigError("data.shard_mb must be positive")
        if isinstance(self.column, int) and self.column < 0:
            raise ConfigError("data.column must be a column index >= 0 or a header name")
