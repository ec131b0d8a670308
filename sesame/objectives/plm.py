"""XLNet's permutation language modelling (objective ``plm``).

Per sequence, ``transform`` samples a factorisation order over the real tokens and
chooses the targets:

* ``sampling = "random"``: a uniform random permutation; the targets are the last
  ceil(n / K) positions of the order (partial prediction, ``k``, default 6);
* ``sampling = "span"``: spans as in the paper and HF's collator: walk the sequence in
  contexts of int(L / plm_probability) tokens, L ~ U{1..max_span_length}, and mark
  one span of L tokens in each. Non-targets come first in the order (rank 0, all
  visible to each other); the spans follow in a random order, the tokens of a span
  sharing a rank (predicted together).

With ``bi_data`` (the paper's bidirectional data pipeline, as in its code and HF's
``bi_data``), the second half of each batch is the backward stream: each of those
rows has its real tokens (and token types) reversed, and the ``xl`` kernel encodes
its relative distances negated (``Layout.backward``). The original code reverses
whole streams; reversing each window is the same thing window by window.

With ``streams`` (XLNet's recurrence), batches are consecutive segments of streams
(``sesame.data.streams``, as for ``xl-clm``) and each layer's content-stream input of
the previous segments (``model.mem_len`` of them) is carried from step to step per
stream (``objectives/memory.py``); both streams see every memory position, as in the
paper. With ``model.mem_len = 0`` the same batches train without memory, the ablation's
baseline.

The batch carries the order (``order``: each position's rank), the ``target_mapping``
(B, M, T) and ``labels`` (B, M), and with ``bi_data`` ``backward`` (B,). The module builds the content- and query-stream
layouts from the order (``nn/attention/two_stream.order_layouts``: content sees ranks
<= its own, query strictly earlier) and scores the query stream's predictions."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.nn.attention.two_stream import order_layouts
from sesame.objectives.base import IGNORE, TokenObjective, to_tensors
from sesame.objectives.memory import StreamMemory, stream_fields
from sesame.task import TaskOutput


@dataclasses.dataclass
class PLMOptions(Section):
    sampling: str = "random"  # random (partial prediction of the last 1/k) | span
    k: int = 6
    max_span_length: int = 5
    plm_probability: float = 1 / 6
    bi_data: bool = False  # the second half of each batch reads its windows backward
    streams: bool = False  # consecutive segments of each stream, with model.mem_len of memory carried

    def validate(self) -> None:
        choice("objective.options.sampling", self.sampling, ("random", "span"))
        if self.k < 1:
            raise ConfigError("objective.options.k (predict the last 1/k of the order) must be >= 1")
        if self.max_span_length < 1 or not 0 < self.plm_probability <= 1:
            raise ConfigError("objective.options: max_span_length >= 1 and plm_probability in (0, 1]")
        if self.bi_data and self.streams:
            raise ConfigError("objective.options: bi_data reverses windows and cannot be combined with streams "
                              "(a backward stream would need its own memories); choose one")


def random_order(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each of n positions, targets = the last ceil(n / k) of the order)."""
    perm = rng.permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[perm] = np.arange(1, n + 1)
    return rank, np.sort(perm[n - math.ceil(n / k):])


def span_order(n: int, max_span: int, prob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rank, targets) of span-based sampling: one span per context of int(L / prob) tokens."""
    spans, cur = [], 0
    while cur < n:
        length = int(rng.integers(1, max_span + 1))
        context = max(int(length / prob), length)
        start = cur + int(rng.integers(0, context - length + 1))
        if start < n:
            spans.append((start, min(start + length, n)))
        cur += context
    rank = np.zeros(n, dtype=np.int64)
    for r, s in enumerate(rng.permutation(len(spans))):
        a, b = spans[s]
        rank[a:b] = r + 1
    targets = np.flatnonzero(rank > 0)
    return rank, targets


def reverse_rows(x: np.ndarray, real: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x`` with the real positions of the chosen ``rows`` in reverse order (padding stays)."""
    x = x.copy()
    for row in np.flatnonzero(rows):
        pos = np.flatnonzero(real[row])
        x[row, pos] = x[row, pos[::-1]]
    return x


@register("objective", "plm")
class PLM(TokenObjective):
    name = "plm"
    archs = ("encoder",)
    Options = PLMOptions
    heads = ("lm",)
    needs = frozenset({"padding", "order"})

    def __init__(self, vocab, options=None):
        super().__init__(vocab, options)
        if self.opts.bi_data:
            self.needs = frozenset(self.needs | {"backward"})
        self.streams = self.opts.streams

    @classmethod
    def reads_streams(cls, opts: dict) -> bool:
        return bool(opts.get("streams", False))

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"])
        b, t = ids.shape
        real = np.asarray(batch["attention_mask"], dtype=bool) if batch.get("attention_mask") is not None \
            else np.ones((b, t), dtype=bool)
        o = self.opts
        types = batch.get("token_type_ids")
        if o.bi_data:
            backward = np.arange(b) >= b - b // 2
            ids, types = reverse_rows(ids, real, backward), None if types is None else \
                reverse_rows(np.asarray(types), real, backward)
        order = np.full((b, t), t + 1, dtype=np.int64)  # padding: after everything (and hidden anyway)
        chosen = []
        for row in range(b):
            pos = np.flatnonzero(real[row])
            if o.sampling == "random":
                rank, targets = random_order(len(pos), o.k, rng)
            else:
                rank, targets = span_order(len(pos), o.max_span_length, o.plm_probability, rng)
            order[row, pos] = rank
            chosen.append(pos[targets])
        m = max(1, max(len(c) for c in chosen))
        mapping = np.zeros((b, m, t), dtype=np.float32)
        labels = np.full((b, m), IGNORE, dtype=np.int64)
        for row, c in enumerate(chosen):
            mapping[row, np.arange(len(c)), c] = 1.0
            labels[row, : len(c)] = ids[row, c]
        out = {"input_ids": ids, "order": order, "target_mapping": mapping, "labels": labels}
        if not o.streams:  # a stream segment has no padding, and its keys include the memory
            out["attention_mask"] = real
        if types is not None:
            out["token_type_ids"] = types
        if o.bi_data:
            out["backward"] = backward
        return stream_fields(batch, to_tensors(out)) if o.streams else to_tensors(out)

    def build(self, model_config) -> nn.Module:
        if not model_config.two_stream or "lm" not in model_config.heads:
            raise ConfigError("the plm objective needs XLNet's query stream: model.two_stream = true, "
                              "model.attention = 'xl' and an 'lm' head (see the xlnet presets)")
        if model_config.mem_len and not self.streams:
            raise ConfigError(f"model.mem_len = {model_config.mem_len} needs objective.options.streams = true: "
                              "shuffled windows have no previous segment to remember")
        self.vocab.check_model(model_config.vocab_size)
        model = build_model(model_config, needed=set(self.needs))
        return RecurrentPLMModule(model) if self.streams else PLMModule(model)


class PLMModule(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, memory=None) -> TaskOutput:
        content, query = order_layouts(batch["order"], batch.get("attention_mask"), backward=batch.get("backward"),
                                       mem=memory.length if memory is not None else 0)
        out = self.model(batch["input_ids"], token_type_ids=batch.get("token_type_ids"), layout=content,
                         query_layout=query, target_mapping=batch["target_mapping"], cache=memory)
        labels = batch["labels"]
        keep = labels != IGNORE
        logits = out.logits["lm"][keep]
        loss = F.cross_entropy(logits.float(), labels[keep], reduction="sum")
        correct = (logits.argmax(-1) == labels[keep]).sum()
        count = keep.sum()
        return TaskOutput(loss, count, {"accuracy": (correct, count)})


class RecurrentPLMModule(StreamMemory, PLMModule):
    """The permutation LM over consecutive segments, with each stream's memory carried."""

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.init_memory()

    def forward(self, batch) -> TaskOutput:
        t = batch["input_ids"].shape[1]
        memory = self.read_memory(batch, t)
        out = super().forward(batch, memory)
        self.write_memory(memory, batch, t)
        return out
