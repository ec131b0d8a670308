"""Sequence classification of one text or a text pair (SST-2, CoLA, MRPC,
ChnSentiCorp, TNEWS, OCNLI, BUSTM, ...): ``[CLS] a [SEP] (b [SEP])`` (XLNet:
``a [SEP] (b [SEP]) [CLS]``, left-padded) through an encoder, the ``classify``
head on the pooled vector (a pre-trained pooler is kept) or on the first token,
summed cross-entropy.

Raw batch: ``{"examples": [TextExample]}`` or ``{"features": [...]}``. Transformed:
``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T) and ``labels`` (B,)
with -100 for unlabeled examples. ``evaluate`` adds macro-F1, Matthews correlation,
per-class scores and the confusion matrix."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F

from sesame.config.registry import register
from sesame.errors import ConfigError, DataError
from sesame.task import TaskOutput
from sesame.tasks import metrics
from sesame.tasks.base import (IGNORE, TRUNCATION, FinetuneTask, TaskModule, TaskOptions, device_of, inference, pad,
                               to_device, truncate_pair, zero_loss)
from sesame.tasks.examples import TextExample


@dataclasses.dataclass
class ClassificationOptions(TaskOptions):
    max_length: int = 128
    class_weights: list[float] = dataclasses.field(default_factory=list)  # per label; [] = unweighted

    def validate(self) -> None:
        super().validate()
        if any(w < 0 for w in self.class_weights):
            raise ConfigError("task option class_weights must not be negative")


class ClassificationModule(TaskModule):
    weights: torch.Tensor | None = None  # class weights of the loss (set by the task)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(batch).logits["classify"]

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        logits = self.logits(batch)
        labels = batch["labels"]
        keep = labels != IGNORE
        count = int(keep.sum())
        if not count:
            return TaskOutput(zero_loss(logits), 0, {})
        weight = None if self.weights is None else self.weights.to(logits.device)
        loss = F.cross_entropy(logits[keep].float(), labels[keep], weight=weight, reduction="sum")
        correct = (logits[keep].argmax(-1) == labels[keep]).sum().item()
        return TaskOutput(loss, count, {"accuracy": (correct, count)})


@register("task", "classification")
class Classification(FinetuneTask):
    name = "classification"
    head = "classify"
    keep_pooler = True
    archs = ("encoder", "bilm", "static")  # ELMo features and static vectors too (feature-based)
    Options = ClassificationOptions
    module_class = ClassificationModule
    needs_labels = True
    truncations = TRUNCATION
    takes_cls_last = True

    def _weighted(self, module: ClassificationModule) -> ClassificationModule:
        if self.opts.class_weights:
            if len(self.opts.class_weights) != len(self.labels):
                raise ConfigError(f"task option class_weights has {len(self.opts.class_weights)} values for "
                                  f"{len(self.labels)} labels")
            module.weights = torch.tensor(self.opts.class_weights, dtype=torch.float32)
        return module

    def build(self, model_config):
        return self._weighted(super().build(model_config))

    def wrap(self, model):
        return self._weighted(super().wrap(model))

    def features(self, examples: Sequence[TextExample]) -> list[dict]:
        out = []
        for ex in examples:
            a = self.tokenizer.encode(ex.text).ids
            b = self.tokenizer.encode(ex.text_b).ids if ex.text_b is not None else None
            a, b = truncate_pair(a, b, self.opts.max_length - (3 if b is not None else 2), self.opts.truncation)
            ids, types = self.inputs(a, b)
            out.append({"input_ids": ids, "token_type_ids": types, "label": self._label(ex)})
        return out

    def _label(self, ex: TextExample) -> int:
        if ex.label is None:
            return IGNORE
        if ex.label not in self.label_ids:
            raise DataError(f"example {ex.id!r}: label {ex.label!r} is not one of the task's labels {self.labels}")
        return self.label_ids[ex.label]

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Right-padded; left-padded when the classification token comes last (XLNet), so
        that it is the last position of every row, where the pooler reads it."""
        left = self.cls_last
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_id, left=left),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0, left=left),
            "token_type_ids": pad([f["token_type_ids"] for f in features], 0, left=left),
            "labels": torch.tensor([f["label"] for f in features], dtype=torch.long),
        }

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def predict(self, module: ClassificationModule, examples: Sequence[TextExample],
                batch_size: int = 32) -> torch.Tensor:
        """(N, num_labels) logits, on the CPU."""
        return self.predict_features(module, self.features(examples), batch_size)

    def predict_features(self, module: ClassificationModule, feats: Sequence[dict],
                         batch_size: int = 32) -> torch.Tensor:
        """(N, num_labels) logits of ready features (``input_ids``, ``token_type_ids``, ``label``)."""
        out = []
        with inference(module):
            for _, batch in self.batches(feats, batch_size):
                out.append(module.logits(to_device(batch, device_of(module))).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.labels))

    def evaluate(self, module: ClassificationModule, examples: Sequence[TextExample], batch_size: int = 32,
                 report_dir=None, name: str | None = None) -> dict:
        """Accuracy, macro-F1, MCC, per-class scores and the confusion matrix over the
        labeled examples; writes a report (JSON, Markdown, confusion PNG) to ``report_dir``."""
        examples = [ex for ex in examples if ex.label is not None]
        logits = self.predict(module, examples, batch_size)
        preds = logits.argmax(-1).tolist()
        golds = [self._label(ex) for ex in examples]
        per = metrics.per_class([self.labels[p] for p in preds], [self.labels[g] for g in golds])
        result = {
            "task": self.name,
            "examples": len(examples),
            "metrics": {"accuracy": metrics.accuracy(preds, golds), "macro_f1": metrics.macro_f1(preds, golds),
                        "mcc": metrics.matthews_corrcoef(preds, golds)},
            "per_class": per,
            "labels": self.labels,
            "confusion": metrics.confusion_matrix(preds, golds, len(self.labels)).tolist(),
            "predictions": [{"id": ex.id, "label": self.labels[p], "gold": ex.label} for ex, p in zip(examples, preds)],
        }
        if report_dir is not None:
            from sesame.tasks.report import write_report

            result["files"] = write_report(result, report_dir, name or self.name)
        return result
