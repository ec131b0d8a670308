"""MASS (Song et al. 2019): masked sequence-to-sequence pre-training.

For each window of m real tokens (a leading and a trailing special token stay in
place), one contiguous fragment of ``max(1, round(fragment_ratio * m))`` tokens
starting at a uniformly chosen position is replaced by ``[MASK]`` in the encoder
input. The decoder input has the window's length and is ``[MASK]`` everywhere
except inside the fragment, where it holds the fragment shifted right by one
(``[MASK] x_u ... x_{v-1}`` for fragment ``x_u .. x_v``), as in the paper's
figure 1; the decoder predicts only the fragment. With ``fragment_ratio = 1``
this is a plain sequence-to-sequence LM over the window; MASS's k = 1 is close to
masked LM."""
from __future__ import annotations

import dataclasses

import numpy as np

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import IGNORE, to_tensors
from sesame.objectives.encdec import Seq2SeqObjective, pad_rows, protected_ends, real_tokens


@dataclasses.dataclass
class MassOptions(Section):
    fragment_ratio: float = 0.5

    def validate(self) -> None:
        if not 0 < self.fragment_ratio <= 1:
            raise ConfigError("objective.options.fragment_ratio must be in (0, 1]")


def fragment(m: int, ratio: float, rng: np.random.Generator) -> tuple[int, int]:
    """(start, end) of the masked fragment of a sequence of ``m`` tokens."""
    length = min(m, max(1, int(round(ratio * m))))
    start = int(rng.integers(0, m - length + 1))
    return start, start + length


@register("objective", "mass")
class Mass(Seq2SeqObjective):
    name = "mass"
    Options = MassOptions

    def __init__(self, vocab, opts=None):
        super().__init__(vocab, opts)
        if vocab.mask_id is None:
            raise ConfigError("mass needs a tokenizer with a [MASK] (or <mask>) token")

    def corrupt(self, ids: np.ndarray, rng: np.random.Generator):
        """(encoder input, decoder input, labels), each as long as ``ids``."""
        mask = self.vocab.mask_id
        head, tail = protected_ends(ids, self.special)
        src, dec = ids.copy(), np.full(len(ids), mask, dtype=np.int64)
        labels = np.full(len(ids), IGNORE, dtype=np.int64)
        m = len(ids) - head - tail
        if m > 0:
            a, b = fragment(m, self.opts.fragment_ratio, rng)
            a, b = a + head, b + head
            src[a:b] = mask
            dec[a + 1:b] = ids[a:b - 1]
            labels[a:b] = ids[a:b]
        return src.astype(np.int64), dec, labels

    def transform(self, batch, rng):
        width = np.asarray(batch["input_ids"]).shape[1]
        parts = [self.corrupt(real_tokens(batch, r), rng) for r in range(len(batch["input_ids"]))]
        src, src_mask = pad_rows([p[0] for p in parts], width, self.pad_id)
        dec, dec_mask = pad_rows([p[1] for p in parts], width, self.pad_id)
        labels, _ = pad_rows([p[2] for p in parts], width, IGNORE)
        return to_tensors({"input_ids": src, "attention_mask": src_mask, "decoder_input_ids": dec,
                           "decoder_attention_mask": dec_mask, "labels": labels})
