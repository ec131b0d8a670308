"""The raw examples readers return and tasks consume: plain dataclasses, one per
kind of task, plus ``Dataset`` (examples + label list + counted decisions)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator


@dataclasses.dataclass
class TextExample:
    """Classification of one text, or of a pair (``text_b``). ``label`` is the label's
    name (``None`` when unlabeled)."""

    text: str
    text_b: str | None = None
    label: str | None = None
    id: str = ""


@dataclasses.dataclass
class TagExample:
    """Token classification: pre-split words and one BIO tag per word."""

    words: list[str]
    tags: list[str] | None = None
    id: str = ""


@dataclasses.dataclass
class Answer:
    text: str
    start: int  # character offset in the context; -1 when the text was not found there


@dataclasses.dataclass
class QAExample:
    """Extractive QA: the answers are character spans of ``context``."""

    id: str
    question: str
    context: str
    answers: list[Answer] = dataclasses.field(default_factory=list)
    impossible: bool = False


@dataclasses.dataclass
class ChoiceExample:
    """Multiple choice: pick one of ``options`` for ``context`` and ``question``.
    With ``blank`` set (CHID's ``#idiom#``), each option is written into the blank of
    the context instead of being appended after the question."""

    context: str
    options: list[str]
    question: str = ""
    label: int | None = None
    blank: str | None = None
    id: str = ""


@dataclasses.dataclass
class PairExample:
    """Sequence to sequence: translation or summarization."""

    source: str
    target: str | None = None
    id: str = ""


@dataclasses.dataclass
class Dataset:
    """What a reader returns. ``labels`` is the label list (class names or tags; empty
    for QA, multiple choice and seq2seq); ``counts`` records every decision taken on
    the input (skipped empty lines, converted tags, relocated answers, ...); ``where``
    names each example's file and line for messages."""

    examples: list[Any]
    labels: list[str]
    path: str
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    where: list[str] = dataclasses.field(default_factory=list)  # file:line of each example (files.py)
    labeled: bool = True  # False: the file had no label column (predictions only)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.examples)

    def __getitem__(self, index):
        return self.examples[index]
