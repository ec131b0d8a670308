"""SpanBERT's span boundary objective (SBO): every token of a masked span is
predicted again from the encoder outputs at the span's two boundary tokens and its
offset in the span (the ``sbo`` head, models/heads.py). It reads the spans that
MLM's ``span`` (or ``ngram``) masking records, so it is trained beside it::

    [objective]
    name = ["mlm", "sbo"]
    [objective.options.mlm]
    unit = "span"

Targets are the same original tokens as MLM's; one per masked token."""
from __future__ import annotations

from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import IGNORE, Objective, scored_loss


@register("objective", "sbo")
class SBO(Objective):
    name = "sbo"
    heads = ("sbo",)

    def check_parts(self, parts) -> None:
        mlm = [p for p in parts if p.name == "mlm"]
        if not mlm or mlm[0].opts.unit not in ("span", "ngram"):
            raise ConfigError("the sbo objective predicts masked spans from their boundaries; train it with "
                              "objective.name = ['mlm', 'sbo'] and objective.options.mlm.unit = 'span'")

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def score(self, out, batch, model):
        labels = batch["labels"]
        select = labels != IGNORE
        b, t = labels.shape
        row = select.nonzero()[:, 0] * t
        left = row + batch["span_left"][select].clamp(min=0)
        right = row + batch["span_right"][select].clamp(min=0)
        logits = model.heads["sbo"].predict(out.hidden, left, right, batch["span_offset"][select])
        loss, count, correct = scored_loss(logits, labels[select])
        return loss, count, {"accuracy": (correct, count)}
