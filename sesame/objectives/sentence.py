"""Sentence-level objectives on the pooler: next-sentence prediction (NSP, BERT)
and sentence-order prediction (SOP, ALBERT).

The pairs and their labels come from the data layer (``data.examples = "nsp"`` or
``"sop"``, data/pairs.py): ``[CLS] A [SEP] B [SEP]`` with ``token_type_ids`` 0/1.
NSP: label 1 when B is a segment of another document, 0 when it continues A. SOP:
label 1 when A and B are swapped, 0 in order. The head is a two-way classifier on
the pooled [CLS] vector; one target per sequence."""
from __future__ import annotations

from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import Objective, scored_loss


class PairObjective(Objective):
    label = ""

    def fields(self, raw):
        if self.label not in raw:
            raise ConfigError(f"the {self.name} objective needs sentence pairs with labels: set "
                              f"data.examples = {self.name!r}")
        return {self.label: raw[self.label]}

    def count(self, batch) -> int:
        return int(batch[self.label].shape[0])

    def score(self, out, batch, model):
        loss, count, correct = scored_loss(out.logits[self.name], batch[self.label].long().reshape(-1))
        return loss, count, {"accuracy": (correct, count)}


@register("objective", "nsp")
class NSP(PairObjective):
    name = "nsp"
    heads = examples = ("nsp",)
    label = "next_sentence_label"


@register("objective", "sop")
class SOP(PairObjective):
    name = "sop"
    heads = examples = ("sop",)
    label = "sentence_order_label"

