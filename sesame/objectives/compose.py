"""Objectives trained together: a list of parts with weights on one transformed batch.

The one part that corrupts the input (MLM, say) runs its transform; the others add
the fields they read from the raw batch (NSP its labels; SBO reads what span
masking recorded). One forward pass of one model feeds every part's head; the
losses add up as ``SharedModule`` describes (objectives/base.py), each part's
metrics logged under its name. ``build_objective`` turns the objective section into
the task. (``RunConfig.validate`` refuses, before any work, runs whose config asks
for something no part does: a head nothing trains, a ``[generator]`` no part reads,
sentence-pair labels no part uses.)"""
from __future__ import annotations

from sesame.config.registry import get
from sesame.errors import ConfigError
from sesame.objectives.base import Objective, build_shared, to_tensors
from sesame.task import Task


class Composite(Task):
    name = "composite"

    def __init__(self, parts: list[Objective], weights: list[float]):
        names = [p.name for p in parts]
        for p in parts:
            if not getattr(p, "composable", False):
                raise ConfigError(f"objective {p.name!r} trains its own networks and cannot be combined with "
                                  f"others; use objective.name = {p.name!r} alone")
        corrupting = [p for p in parts if p.corrupts]
        if len(corrupting) > 1:
            raise ConfigError(f"objectives {[p.name for p in corrupting]} each corrupt the input; a combination "
                              "shares one corrupted batch, so list at most one of them")
        for p in parts:
            p.check_parts(parts)
        self.parts, self.weights = parts, weights
        self.main = corrupting[0] if corrupting else parts[0]
        self.name = "+".join(names)
        self.needs = frozenset().union(*(p.needs for p in parts))

    def transform(self, batch, rng):
        out = dict(self.main.transform(batch, rng))
        for p in self.parts:
            if p is not self.main:
                out.update(to_tensors(p.fields(batch)))
        return out

    def count(self, batch) -> int:
        return sum(p.count(batch) for p in self.parts)

    def check_corpus(self, corpus) -> None:
        for p in self.parts:
            p.check_corpus(corpus)

    def build(self, model_config):
        archs = set(self.parts[0].archs).intersection(*(p.archs for p in self.parts))
        if model_config.arch not in archs:
            raise ConfigError(f"objectives {self.name} need model.arch in {sorted(archs)}, "
                              f"but model.arch = {model_config.arch!r}")
        return build_shared(model_config, self.parts, self.weights, self.parts[0].vocab)


def reads_streams(objective_config) -> bool:
    """Whether the ``[objective]`` trains on consecutive segments of streams (Transformer-XL
    recurrence) rather than on windows; a composition cannot mix the two."""
    parts = objective_config.resolved()
    kinds = [get("objective", p.name).reads_streams(p.options) for p in parts]
    if len(set(kinds)) > 1:
        raise ConfigError(f"objectives {[p.name for p in parts]} mix consecutive-segment streams and windows; "
                          "train them in separate runs")
    return kinds[0]


def build_objective(objective_config, vocab, generator=None) -> Task:
    """The task the ``[objective]`` section names (one objective, or a Composite)."""
    parts = objective_config.resolved()
    tasks = []
    for part in parts:
        cls = get("objective", part.name)
        task = cls(vocab, part.options, generator=generator) if getattr(cls, "uses_generator", False) \
            else cls(vocab, part.options)
        tasks.append(task)
    if len(tasks) == 1:
        tasks[0].check_parts(tasks)
        return tasks[0]
    return Composite(tasks, [p.weight for p in parts])

