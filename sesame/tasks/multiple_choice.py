"""Multiple choice (C3, CHID) with the ``choice`` head: every (context, option) pair
is encoded as ``[CLS] context [SEP] question option [SEP]`` and scored once; a
softmax over a question's options gives the loss (summed cross-entropy).

With a ``blank`` (CHID's ``#idiom#``) the option is written into the context in
place of the blank and the question (if any) is the second segment; a long
context is then cut to a window centred on the filled blank, so the option is
never truncated away. Otherwise the context is truncated first.

Raw batch: ``{"examples": [ChoiceExample]}`` or ``{"features": [...]}``.
Transformed: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, C, T),
``option_mask`` (B, C) (questions may have different numbers of options),
``labels`` (B,)."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F

from sesame.config.registry import register
from sesame.errors import DataError
from sesame.task import TaskOutput
from sesame.tasks import metrics
from sesame.tasks.base import IGNORE, FinetuneTask, TaskModule, TaskOptions, device_of, inference, pad, to_device, \
    zero_loss
from sesame.tasks.examples import ChoiceExample


@dataclasses.dataclass
class ChoiceOptions(TaskOptions):
    max_length: int = 256


class ChoiceModule(TaskModule):
    def logits(self, batch) -> torch.Tensor:
        """(B, C) option scores; missing options score -inf."""
        keep = batch["option_mask"].bool()
        flat = {k: batch[k][keep] for k in ("input_ids", "attention_mask", "token_type_ids")}
        scores = self.encode(flat).logits["choice"].float()
        out = scores.new_full(keep.shape, float("-inf"))
        return out.masked_scatter(keep, scores)

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        logits = self.logits(batch)
        labels = batch["labels"]
        keep = labels != IGNORE
        count = int(keep.sum())
        if not count:
            return TaskOutput(zero_loss(logits.masked_fill(logits.isinf(), 0)), 0, {})
        loss = F.cross_entropy(logits[keep], labels[keep], reduction="sum")
        correct = (logits[keep].argmax(-1) == labels[keep]).sum().item()
        return TaskOutput(loss, count, {"accuracy": (correct, count)})


@register("task", "multiple_choice")
class MultipleChoice(FinetuneTask):
    name = "multiple_choice"
    head = "choice"
    keep_pooler = True
    Options = ChoiceOptions
    module_class = ChoiceModule

    def head_fields(self) -> dict:
        return {}

    def features(self, examples: Sequence[ChoiceExample]) -> list[dict]:
        out = []
        for ex in examples:
            if ex.label is not None and not 0 <= ex.label < len(ex.options):
                raise DataError(f"example {ex.id!r}: label {ex.label} is not an index into {len(ex.options)} options")
            rows = [self._pair(ex, option) for option in ex.options]
            out.append({"input_ids": [r[0] for r in rows], "token_type_ids": [r[1] for r in rows],
                        "label": IGNORE if ex.label is None else ex.label})
        return out

    def _pair(self, ex: ChoiceExample, option: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer.encode
        if ex.blank and ex.blank in ex.context:
            at = ex.context.index(ex.blank)
            text = ex.context[:at] + option + ex.context[at + len(ex.blank):]
            b = enc(ex.question).ids if ex.question else None
            budget = self.opts.max_length - (3 if b else 2)
            if b is not None:
                b = b[: budget // 2]
            ctx = enc(text)
            room = budget - (len(b) if b else 0)
            centre = next((k for k, (s, e) in enumerate(ctx.offsets) if e > at), 0)
            lo = max(0, min(centre - room // 2, len(ctx.ids) - room))
            return self.tokenizer.build_inputs(ctx.ids[lo:lo + room], b)
        a = enc(ex.context).ids
        b = enc(ex.question).ids + enc(option).ids if ex.question else enc(option).ids
        budget = self.opts.max_length - 3
        b = b[: max(budget // 2, budget - len(a))]  # the option keeps at most half when the context is long
        return self.tokenizer.build_inputs(a[: budget - len(b)], b)

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max((len(r) for f in features for r in f["input_ids"]), default=1)
        options = max((len(f["input_ids"]) for f in features), default=1)

        def grid(key: str, value: int, fn=lambda row: row) -> torch.Tensor:
            rows = [fn(f[key][c]) if c < len(f[key]) else [] for f in features for c in range(options)]
            return pad(rows, value, width).view(len(features), options, width)

        return {
            "input_ids": grid("input_ids", self.pad_id),
            "attention_mask": grid("input_ids", 0, lambda row: [1] * len(row)),
            "token_type_ids": grid("token_type_ids", 0),
            "option_mask": pad([[1] * len(f["input_ids"]) for f in features], 0, options),
            "labels": torch.tensor([f["label"] for f in features], dtype=torch.long),
        }

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def predict(self, module: ChoiceModule, examples: Sequence[ChoiceExample], batch_size: int = 8) -> list[int]:
        feats = self.features(examples)
        out: list[int] = []
        with inference(module):
            for _, batch in self.batches(feats, batch_size):
                out += module.logits(to_device(batch, device_of(module))).argmax(-1).tolist()
        return out

    def evaluate(self, module: ChoiceModule, examples: Sequence[ChoiceExample], batch_size: int = 8,
                 report_dir=None, name: str | None = None) -> dict:
        """Accuracy over the labeled questions."""
        examples = [ex for ex in examples if ex.label is not None]
        preds = self.predict(module, examples, batch_size)
        golds = [ex.label for ex in examples]
        result = {
            "task": self.name,
            "examples": len(examples),
            "metrics": {"accuracy": metrics.accuracy(preds, golds)},
            "predictions": [{"id": ex.id, "choice": p, "gold": ex.label} for ex, p in zip(examples, preds)],
        }
        if report_dir is not None:
            from sesame.tasks.report import write_report

            result["files"] = write_report(result, report_dir, name or self.name)
        return result

