"""T5 span corruption (Raffel et al. 2020, section 3.1.4).

In each window, ``round(n * noise_density)`` tokens are noise, cut into
``round(noise / mean_span_length)`` spans; the noise and the clean tokens are each
split into that many non-empty runs uniformly at random and interleaved, clean
first (T5's ``random_spans_noise_mask``). The input keeps the clean tokens and
replaces span i by sentinel i (``<extra_id_i>``); the target is
``<extra_id_0> span_0 <extra_id_1> span_1 ... </s>``; both end with ``</s>``.

Exact lengths for packing (T5's ``random_spans_helper``): ``window_length(L)``
is the largest raw window whose corrupted input is at most ``L`` tokens with the
end token, so a full window gives an input of exactly ``data.seq_len`` tokens
and a target of exactly ``target_length(L)``: no window overflows, none is cut."""
from __future__ import annotations

import dataclasses

import numpy as np

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import options
from sesame.objectives.encdec import Seq2SeqObjective, real_tokens


@dataclasses.dataclass
class T5SpanOptions(Section):
    noise_density: float = 0.15
    mean_span_length: float = 3.0

    def validate(self) -> None:
        if not 0 < self.noise_density < 1:
            raise ConfigError("objective.options.noise_density must be in (0, 1)")
        if self.mean_span_length < 1:
            raise ConfigError("objective.options.mean_span_length must be at least 1")


def corrupted_lengths(tokens: int, density: float, mean_span: float) -> tuple[int, int]:
    """(input length, target length), each with its end token, of a window of ``tokens``."""
    noise = int(round(tokens * density))
    spans = int(round(noise / mean_span))
    return tokens - noise + spans + 1, noise + spans + 1


def raw_length(inputs_length: int, density: float, mean_span: float) -> int:
    """The largest window whose corrupted input (end token included) fits ``inputs_length``."""
    tokens = inputs_length
    while corrupted_lengths(tokens + 1, density, mean_span)[0] <= inputs_length:
        tokens += 1
    return tokens


def random_segmentation(items: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths of ``segments`` non-empty runs summing to ``items``, every split equally likely."""
    cuts = np.sort(rng.choice(items - 1, segments - 1, replace=False) + 1) if segments > 1 else np.zeros(0, int)
    return np.diff(np.concatenate([[0], cuts, [items]]))


def noise_spans(length: int, density: float, mean_span: float, rng: np.random.Generator):
    """(clean run lengths, noise span lengths), interleaved clean first; None when too short."""
    if length < 2:
        return None
    noise = min(max(int(round(length * density)), 1), length - 1)
    spans = max(int(round(noise / mean_span)), 1)
    spans = min(spans, length - noise)
    return random_segmentation(length - noise, spans, rng), random_segmentation(noise, spans, rng)


def span_corrupt(ids: np.ndarray, sentinels, end_id: int, density: float, mean_span: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, target ids) of one window of real tokens."""
    cut = noise_spans(len(ids), density, mean_span, rng)
    if cut is None:
        return np.append(ids, end_id), np.array([end_id])
    clean, noise = cut
    if len(noise) > len(sentinels):
        raise ConfigError(
            f"a window of {len(ids)} tokens needs {len(noise)} sentinels but the tokenizer has "
            f"{len(sentinels)} (<extra_id_0> ...); add more <extra_id_N> special tokens or shorten data.seq_len"
        )
    src, tgt, pos = [], [], 0
    for i, (c, n) in enumerate(zip(clean, noise)):
        src += [ids[pos:pos + c], [sentinels[i]]]
        tgt += [[sentinels[i]], ids[pos + c:pos + c + n]]
        pos += c + n
    src.append([end_id])
    tgt.append([end_id])
    return np.concatenate(src).astype(np.int64), np.concatenate(tgt).astype(np.int64)


@register("objective", "t5-span")
class T5Span(Seq2SeqObjective):
    name = "t5-span"
    Options = T5SpanOptions

    def __init__(self, vocab, opts=None):
        super().__init__(vocab, opts)
        if not vocab.sentinel_ids:
            raise ConfigError("t5-span needs sentinel tokens <extra_id_0>, <extra_id_1>, ... in the tokenizer; "
                              "add them to tokenizer.special_tokens (the t5 recipes list 100)")
        if vocab.end_id is None:
            raise ConfigError("t5-span needs an end token (</s> or [SEP]) in the tokenizer")

    @classmethod
    def window_length(cls, seq_len: int, opts: dict) -> int:
        """Raw tokens per window so that a full window's input is exactly ``seq_len``."""
        o = options(T5SpanOptions, opts, "t5-span")
        return raw_length(seq_len, o.noise_density, o.mean_span_length)

    def target_length(self, seq_len: int) -> int:
        o = self.opts
        return corrupted_lengths(raw_length(seq_len, o.noise_density, o.mean_span_length), o.noise_density,
                                 o.mean_span_length)[1]

    def transform(self, batch, rng):
        o = self.opts
        rows = len(batch["input_ids"])
        pairs = [span_corrupt(real_tokens(batch, r), self.vocab.sentinel_ids, self.vocab.end_id, o.noise_density,
                              o.mean_span_length, rng) for r in range(rows)]
        window = np.asarray(batch["input_ids"]).shape[1]
        src_width, tgt_width = corrupted_lengths(window, o.noise_density, o.mean_span_length)
        src_width = max([src_width, *(len(s) for s, _ in pairs)])
        tgt_width = max([tgt_width, *(len(t) for _, t in pairs)])
        return self.pack([s for s, _ in pairs], src_width, self.teacher_forcing([t for _, t in pairs], tgt_width))
