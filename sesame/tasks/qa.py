"""Extractive question answering (SQuAD format: CMRC 2018) with the ``span`` head.

Each example becomes ``[CLS] question [SEP] context-window [SEP]`` features: a
context longer than the room left by the question is cut into windows whose
starts are ``doc_stride`` tokens apart. The gold answer's character span is
mapped through the token offsets to start/end positions; a window that does not
hold the whole answer points both at ``[CLS]`` (position 0), as does a question
without a located answer. Prediction searches the ``n_best`` starts and ends of
every window for the best-scoring valid span (inside the context, start <= end,
at most ``max_answer_length`` tokens, the start token in the window where it has
the most context) and cuts the answer text out of the context by offsets.

Raw batch: ``{"examples": [QAExample]}`` or ``{"features": [...]}``. Transformed:
``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T), ``start_positions``,
``end_positions`` (B,) (-100 for unlabeled). Loss per window:
(CE(start) + CE(end)) / 2, summed; count = windows."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sesame.config.base import choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.task import TaskOutput
from sesame.tasks import metrics
from sesame.tasks.base import IGNORE, FinetuneTask, TaskModule, TaskOptions, device_of, inference, pad, to_device, \
    zero_loss
from sesame.tasks.examples import QAExample


@dataclasses.dataclass
class QAOptions(TaskOptions):
    max_length: int = 384
    doc_stride: int = 128  # tokens between the starts of two context windows
    max_query_length: int = 64
    max_answer_length: int = 30  # tokens
    n_best: int = 20  # start and end candidates per window
    metric: str = "squad"  # squad | cmrc2018
    allow_impossible: bool = False  # SQuAD 2.0: answer "" when [CLS] outscores every span

    def validate(self) -> None:
        super().validate()
        choice("task.options.metric", self.metric, ("squad", "cmrc2018"))
        for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                raise ConfigError(f"task option {name} must be at least 1")


class QAModule(TaskModule):
    def logits(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.encode(batch).logits["span"].float()
        mask = batch["attention_mask"].bool()
        out = out.masked_fill(~mask[..., None], torch.finfo(out.dtype).min)
        return out[..., 0], out[..., 1]

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        start, end = self.logits(batch)
        s_gold, e_gold = batch["start_positions"], batch["end_positions"]
        keep = s_gold != IGNORE
        count = int(keep.sum())
        if not count:
            return TaskOutput(zero_loss(start), 0, {})
        loss = (F.cross_entropy(start[keep], s_gold[keep], reduction="sum")
                + F.cross_entropy(end[keep], e_gold[keep], reduction="sum")) / 2
        exact = ((start[keep].argmax(-1) == s_gold[keep]) & (end[keep].argmax(-1) == e_gold[keep])).sum().item()
        return TaskOutput(loss, count, {"span_accuracy": (exact, count)})


def windows(n: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) windows covering ``n`` tokens, ``room`` tokens each, starts ``stride`` apart."""
    out, start = [], 0
    while True:
        length = min(room, n - start)
        out.append((start, length))
        if start + length >= n:
            return out
        start += min(length, stride)


def max_context(spans: Sequence[tuple[int, int]], index: int, position: int) -> bool:
    """Is window ``index`` the one where token ``position`` has the most context
    (min of left and right context, ties to the longer window, then the earlier)?"""
    return bool(best_windows(spans, position + 1)[position] == index)


def best_windows(spans: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """For each of ``n`` tokens, the window where it has the most context (-1: none)."""
    best = np.full(n, -1, dtype=np.int64)
    score = np.full(n, -np.inf)
    for k, (start, length) in enumerate(spans):
        stop = min(start + length, n)
        if stop <= start:
            continue
        j = np.arange(stop - start)
        cand = np.minimum(j, length - 1 - j) + 0.01 * length
        better = cand > score[start:stop]
        score[start:stop][better] = cand[better]
        best[start:stop][better] = k
    return best


def char_to_tokens(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last token overlapping the character span [start, end), or None."""
    inside = [k for k, (s, e) in enumerate(offsets) if e > start and s < end and e > s]
    return (inside[0], inside[-1]) if inside else None


@register("task", "qa")
class QuestionAnswering(FinetuneTask):
    name = "qa"
    head = "span"
    Options = QAOptions
    module_class = QAModule

    def features(self, examples: Sequence[QAExample]) -> list[dict]:
        o = self.opts
        out = []
        for index, ex in enumerate(examples):
            question = self.tokenizer.encode(ex.question).ids[: o.max_query_length]
            ctx = self.tokenizer.encode(ex.context)
            room = o.max_length - len(question) - 3
            if room < 1:
                raise ConfigError(f"max_length = {o.max_length} leaves no room for the context after "
                                  f"a {len(question)}-token question; raise max_length or lower max_query_length")
            spans = windows(len(ctx.ids), room, o.doc_stride)
            owner = best_windows(spans, len(ctx.ids))
            answer = self._answer_tokens(ex, ctx.offsets)
            for k, (start, length) in enumerate(spans):
                ids, types = self.tokenizer.build_inputs(question, ctx.ids[start:start + length])
                first = len(question) + 2  # [CLS] question [SEP]
                offsets = [None] * first + [list(span) for span in ctx.offsets[start:start + length]] + [None]
                best = [False] * first + (owner[start:start + length] == k).tolist() + [False]
                s_pos = e_pos = IGNORE
                if answer is not None:
                    s_pos = e_pos = 0
                    if answer != (-1, -1) and start <= answer[0] and answer[1] < start + length:
                        s_pos, e_pos = answer[0] - start + first, answer[1] - start + first
                out.append({"input_ids": ids, "token_type_ids": types, "start_position": s_pos,
                            "end_position": e_pos, "example": index, "window": k,
                            "offsets": offsets, "max_context": best})
        return out

    def _answer_tokens(self, ex: QAExample, offsets) -> tuple[int, int] | None:
        """Token span of the first located answer; (-1, -1) for none (impossible or not
        located: trained towards [CLS]); None for an unlabeled example."""
        if not ex.answers and not ex.impossible:
            return None
        for ans in ex.answers:
            if ans.start >= 0 and ans.text and not ex.impossible:
                span = char_to_tokens(offsets, ans.start, ans.start + len(ans.text))
                if span is not None:
                    return span
        return (-1, -1)

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "token_type_ids": pad([f["token_type_ids"] for f in features], 0),
            "start_positions": torch.tensor([f["start_position"] for f in features], dtype=torch.long),
            "end_positions": torch.tensor([f["end_position"] for f in features], dtype=torch.long),
        }

    def count(self, batch) -> int:
        return int((batch["start_positions"] != IGNORE).sum())

    def best_spans(self, examples: Sequence[QAExample], feats: Sequence[dict],
                   start_logits: Sequence[Sequence[float]], end_logits: Sequence[Sequence[float]]) -> dict[str, str]:
        """{question id: answer text}: the best valid span over all windows of each example."""
        o = self.opts
        best: dict[int, tuple[float, str]] = {}
        null: dict[int, float] = {}
        for feat, s_log, e_log in zip(feats, start_logits, end_logits):
            s_log, e_log = torch.as_tensor(s_log)[: len(feat["input_ids"])], torch.as_tensor(e_log)
            e_log = e_log[: len(feat["input_ids"])]
            ex = feat["example"]
            null[ex] = min(null.get(ex, float("inf")), float(s_log[0] + e_log[0]))
            k = min(o.n_best, len(s_log))
            starts, ends = s_log.topk(k).indices.tolist(), e_log.topk(k).indices.tolist()
            offs, ctx = feat["offsets"], examples[ex].context
            for s in starts:
                if offs[s] is None or not feat["max_context"][s]:
                    continue
                for e in ends:
                    if offs[e] is None or e < s or e - s + 1 > o.max_answer_length:
                        continue
                    score = float(s_log[s] + e_log[e])
                    if ex not in best or score > best[ex][0]:
                        best[ex] = (score, ctx[offs[s][0]:offs[e][1]])
        out = {}
        for i, ex in enumerate(examples):
            score, text = best.get(i, (float("-inf"), ""))
            if o.allow_impossible and i in null and null[i] > score:
                text = ""
            out[ex.id] = text
        return out

    def predict(self, module: QAModule, examples: Sequence[QAExample], batch_size: int = 32) -> dict[str, str]:
        feats = self.features(examples)
        starts, ends = [], []
        with inference(module):
            for _, batch in self.batches(feats, batch_size):
                s, e = module.logits(to_device(batch, device_of(module)))
                starts += s.cpu().unbind(0)
                ends += e.cpu().unbind(0)
        return self.best_spans(examples, feats, starts, ends)

    def evaluate(self, module: QAModule, examples: Sequence[QAExample], batch_size: int = 32,
                 report_dir=None, name: str | None = None) -> dict:
        """Exact match and F1 (``metric``: squad or cmrc2018) against all gold answers."""
        examples = list(examples)
        preds = self.predict(module, examples, batch_size)
        golds = {ex.id: [a.text for a in ex.answers] if not ex.impossible else [] for ex in examples}
        scores = metrics.qa_scores(preds, golds, self.opts.metric)
        result = {
            "task": self.name,
            "examples": len(examples),
            "metrics": {"exact_match": scores["exact_match"], "f1": scores["f1"]},
            "counts": {"questions": scores["questions"], "empty_predictions": sum(not p for p in preds.values())},
            "metric_style": self.opts.metric,
            "predictions": [{"id": qid, "answer": text} for qid, text in preds.items()],
        }
        if report_dir is not None:
            from sesame.tasks.report import write_report

            result["files"] = write_report(result, report_dir, name or self.name)
        return result
