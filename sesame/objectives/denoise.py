"""BART denoising (Lewis et al. 2020): corrupt a window with a configurable mix of
the paper's five noises and reconstruct the original with the decoder.

Applied in fairseq's order to the real tokens of each window; a leading and a
trailing special token ([CLS]/<s>, </s>) stay in place:

1. sentence permutation (``permute_sentences``, the fraction of sentences whose
   order is shuffled), reading the sentence starts the corpus recorded
   (``sentence_starts`` in the batch; a window cut mid-sentence makes its first
   piece a sentence of its own);
2. token deletion (``delete_prob``, each token independently);
3. token masking (``token_mask_prob``, each token becomes ``<mask>``);
4. text infilling (``mask_ratio``): span lengths drawn from Poisson(``poisson_lambda``)
   until they cover ``ceil(mask_ratio * n)`` tokens (the last one cut to fit), placed
   without overlap uniformly at random among the kept tokens; each span, a
   0-length one included (an insertion), becomes ONE ``<mask>``;
5. document rotation (``rotate_prob``): the window starts at a uniformly chosen token.

The target is the original window. An input is never longer than its window: an
insertion that would overflow it is not made (``infill`` reports how many).
The paper's final BART uses infilling 0.3 with full sentence permutation (the defaults)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError, DataError
from sesame.objectives.encdec import Seq2SeqObjective, protected_ends, real_tokens


@dataclasses.dataclass
class DenoiseOptions(Section):
    mask_ratio: float = 0.3  # text infilling; 0: off
    poisson_lambda: float = 3.0
    permute_sentences: float = 1.0  # 0: off
    token_mask_prob: float = 0.0
    delete_prob: float = 0.0
    rotate_prob: float = 0.0

    def validate(self) -> None:
        for name in ("mask_ratio", "permute_sentences", "token_mask_prob", "delete_prob", "rotate_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"objective.options.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.poisson_lambda <= 0:
            raise ConfigError("objective.options.poisson_lambda must be positive")
        if self.mask_ratio >= 1.0:
            raise ConfigError("objective.options.mask_ratio must be below 1 (something must stay visible)")


def span_lengths(to_mask: int, lam: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(lam) lengths drawn until they cover ``to_mask`` tokens; the last is cut to fit."""
    out, total = [], 0
    while total < to_mask:
        draw = rng.poisson(lam, size=max(8, int(2 * (to_mask - total) / lam) + 1))
        for length in draw:
            out.append(int(length))
            total += int(length)
            if total >= to_mask:
                break
    lengths = np.array(out, dtype=np.int64)
    if len(lengths):
        lengths[-1] -= total - to_mask
    return lengths


def infill(ids: np.ndarray, ratio: float, lam: float, mask_id: int, rng: np.random.Generator,
           room: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(corrupted ids, span lengths in input order, insertions dropped to fit ``room``)."""
    n = len(ids)
    lengths = span_lengths(math.ceil(n * ratio), lam, rng) if n and ratio > 0 else np.zeros(0, np.int64)
    kept = n - int(lengths.sum())
    dropped = 0
    if room is not None and kept + len(lengths) > room:  # only 0-length spans lengthen the input
        zero = np.flatnonzero(lengths == 0)
        dropped = min(len(zero), kept + len(lengths) - room)
        lengths = np.delete(lengths, zero[:dropped])
    k = len(lengths)
    slots = kept + k
    is_span = np.zeros(slots, dtype=bool)
    is_span[rng.choice(slots, k, replace=False)] = True
    order = rng.permutation(k)  # which span goes to which span slot
    consumed = np.ones(slots, dtype=np.int64)
    consumed[is_span] = lengths[order]
    start = np.cumsum(consumed) - consumed
    out = np.where(is_span, mask_id, ids[np.minimum(start, max(n - 1, 0))] if n else 0)
    return out.astype(np.int64), lengths[order], dropped


def sentence_pieces(starts: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the sentences of a span from its sentence-start flags."""
    cut = np.flatnonzero(starts)
    cut = np.concatenate([[0], cut[cut > 0], [len(starts)]]) if len(starts) else np.zeros(0, int)
    return [(int(a), int(b)) for a, b in zip(cut[:-1], cut[1:]) if b > a]


def permute(ids: np.ndarray, starts: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    pieces = sentence_pieces(starts)
    chosen = np.sort(rng.choice(len(pieces), math.ceil(len(pieces) * fraction), replace=False))
    order = np.arange(len(pieces))
    order[chosen] = chosen[rng.permutation(len(chosen))]
    return np.concatenate([ids[pieces[i][0]:pieces[i][1]] for i in order]) if pieces else ids


@register("objective", "bart")
class Denoise(Seq2SeqObjective):
    name = "bart"
    Options = DenoiseOptions

    def __init__(self, vocab, opts=None):
        super().__init__(vocab, opts)
        o = self.opts
        if vocab.mask_id is None and (o.mask_ratio > 0 or o.token_mask_prob > 0):
            raise ConfigError("bart denoising with masking needs a tokenizer with a <mask> token")

    def corrupt(self, ids: np.ndarray, starts: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """The noised version of one window's real tokens (the target is ``ids`` itself)."""
        o = self.opts
        head, tail = protected_ends(ids, self.special)
        body = ids[head:len(ids) - tail]
        if o.permute_sentences > 0 and len(body):
            if starts is None:
                raise DataError("sentence permutation needs the corpus's sentence starts (batch field "
                                "sentence_starts); use prepared corpus windows or set permute_sentences = 0")
            body = permute(body, starts[head:len(ids) - tail], o.permute_sentences, rng)
        if o.delete_prob > 0:
            body = body[rng.random(len(body)) >= o.delete_prob]
        if o.token_mask_prob > 0:
            body = np.where(rng.random(len(body)) < o.token_mask_prob, self.vocab.mask_id, body)
        if o.mask_ratio > 0:
            body = infill(body, o.mask_ratio, o.poisson_lambda, self.vocab.mask_id, rng,
                          room=len(ids) - head - tail)[0]
        if o.rotate_prob > 0 and len(body) > 1 and rng.random() < o.rotate_prob:
            body = np.roll(body, -int(rng.integers(len(body))))
        return np.concatenate([ids[:head], body, ids[len(ids) - tail:]]).astype(np.int64)

    def transform(self, batch, rng):
        rows = len(batch["input_ids"])
        window = np.asarray(batch["input_ids"]).shape[1]
        starts = batch.get("sentence_starts")
        mask = batch.get("attention_mask")
        sources, targets = [], []
        for r in range(rows):
            ids = real_tokens(batch, r)
            flags = None
            if starts is not None:
                flags = np.asarray(starts[r]).astype(bool)
                flags = flags if mask is None else flags[np.asarray(mask[r]).astype(bool)]
            sources.append(self.corrupt(ids, flags, rng))
            targets.append(ids.astype(np.int64))
        return self.pack(sources, window, self.teacher_forcing(targets, window))
