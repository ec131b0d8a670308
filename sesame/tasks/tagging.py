"""Token classification (NER: CoNLL-2003, WNUT-17, MSRA) with the ``tag`` head.
Inputs are ``[CLS] words [SEP]``, or XLNet's ``words [SEP] [CLS]`` for a ``pool_last`` model.

Words are joined with single spaces and tokenised once; each token belongs to the
word whose character span holds its start offset. The first sub-token of a word
carries the word's tag, the other sub-tokens and the special tokens -100, so the
loss and the predictions are per word. Words cut off by ``max_length`` (or that
yield no token at all, e.g. a lone zero-width space) are predicted ``O`` and
counted in the evaluation.

Raw batch: ``{"examples": [TagExample]}`` or ``{"features": [...]}``. Transformed:
``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels`` (B, T)."""
from __future__ import annotations

import bisect
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
from sesame.tasks.examples import TagExample


@dataclasses.dataclass
class TaggingOptions(TaskOptions):
    max_length: int = 128


class TaggingModule(TaskModule):
    def logits(self, batch, select=None) -> torch.Tensor:
        return self.encode(batch, select).logits["tag"]

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        count = int(select.sum())
        logits = self.logits(batch, select)
        if not count:
            return TaskOutput(zero_loss(logits), 0, {})
        target = labels[select]
        loss = F.cross_entropy(logits.float(), target, reduction="sum")
        correct = (logits.argmax(-1) == target).sum().item()
        return TaskOutput(loss, count, {"accuracy": (correct, count)})


def align(words: Sequence[str], offsets: Sequence[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """For tokens of ``' '.join(words)`` with character ``offsets``: the word index of each
    token and whether it is that word's first token."""
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    owner, first, seen = [], [], set()
    for s, e in offsets:
        w = bisect.bisect_right(starts, s) - 1
        inside = w >= 0 and s < starts[w] + len(words[w]) and e > s
        owner.append(w if inside else -1)
        first.append(inside and w not in seen)
        if inside:
            seen.add(w)
    return owner, first


@register("task", "tagging")
class Tagging(FinetuneTask):
    name = "tagging"
    head = "tag"
    archs = ("encoder", "bilm", "static")  # ELMo features and static vectors too (feature-based)
    Options = TaggingOptions
    module_class = TaggingModule
    needs_labels = True
    takes_cls_last = True

    def features(self, examples: Sequence[TagExample]) -> list[dict]:
        out = []
        budget = self.opts.max_length - 2
        lead = 0 if self.cls_last else 1  # XLNet: a [SEP] [CLS], no token before the words
        for ex in examples:
            if ex.tags is not None and len(ex.tags) != len(ex.words):
                raise DataError(f"example {ex.id!r}: {len(ex.words)} words but {len(ex.tags)} tags")
            enc = self.tokenizer.encode(" ".join(ex.words))
            owner, first = align(ex.words, enc.offsets)
            word_token = [-1] * len(ex.words)
            has_token = [False] * len(ex.words)
            labels = []
            for k, (w, is_first) in enumerate(zip(owner, first)):
                if w >= 0:
                    has_token[w] = True
                if k >= budget:
                    continue
                if is_first:
                    word_token[w] = k + lead  # position after a leading [CLS]
                labels.append(self._tag(ex, w) if is_first else IGNORE)
            ids, types = self.inputs(enc.ids[:budget])
            out.append({
                "input_ids": ids, "token_type_ids": types,
                "labels": [IGNORE] * lead + labels + [IGNORE] * (len(ids) - lead - len(labels)),
                "word_token": word_token,
                "words_truncated": sum(h and t < 0 for h, t in zip(has_token, word_token)),
                "words_without_tokens": sum(not h for h in has_token),
            })
        return out

    def _tag(self, ex: TagExample, w: int) -> int:
        if ex.tags is None:
            return IGNORE
        tag = ex.tags[w]
        if tag not in self.label_ids:
            raise DataError(f"example {ex.id!r}: tag {tag!r} is not one of the task's tags {self.labels}")
        return self.label_ids[tag]

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "token_type_ids": pad([f["token_type_ids"] for f in features], 0),
            "labels": pad([f["labels"] for f in features], IGNORE),
        }

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def predict(self, module: TaggingModule, examples: Sequence[TagExample], batch_size: int = 32
                ) -> tuple[list[list[str]], dict[str, int]]:
        """Word-level predicted tags per example and the counts of words predicted ``O``
        because they were truncated or had no token."""
        feats = self.features(examples)
        preds: list[list[str]] = []
        with inference(module):
            for start, batch in self.batches(feats, batch_size):
                best = module.logits(to_device(batch, device_of(module))).argmax(-1).cpu()
                for row, feat in enumerate(feats[start:start + len(batch["input_ids"])]):
                    preds.append([self.labels[int(best[row, t])] if t >= 0 else "O" for t in feat["word_token"]])
        counts = {key: sum(f[key] for f in feats) for key in ("words_truncated", "words_without_tokens")}
        return preds, counts

    def evaluate(self, module: TaggingModule, examples: Sequence[TagExample], batch_size: int = 32,
                 report_dir=None, name: str | None = None) -> dict:
        """Entity-level precision/recall/F1 (conlleval) and token accuracy over words."""
        examples = [ex for ex in examples if ex.tags is not None]
        preds, counts = self.predict(module, examples, batch_size)
        scores = metrics.conlleval([ex.tags for ex in examples], preds)
        result = {
            "task": self.name,
            "examples": len(examples),
            "metrics": {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")},
            "per_type": scores["per_type"],
            "counts": {"tokens": scores["tokens"], "found_gold": scores["found_gold"],
                       "found_pred": scores["found_pred"], "correct": scores["correct"], **counts},
            "predictions": [{"id": ex.id, "tags": p} for ex, p in zip(examples, preds)],
        }
        if report_dir is not None:
            from sesame.tasks.report import write_report

            result["files"] = write_report(result, report_dir, name or self.name)
        return result
