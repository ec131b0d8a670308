"""Character classes shared by tokenizers, segmenters and sentence rules."""
from __future__ import annotations

import re

import numpy as np

# The CJK ideograph blocks BERT treats as one-character words (its _is_chinese_char).
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# A regex character class of those blocks, written with literal characters so that both
# Python's re and the tokenizers (Oniguruma) regex engine read it.
CJK_CLASS = "[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in CJK_RANGES) + "]"

_CJK_RE = re.compile(CJK_CLASS)


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(a <= cp <= b for a, b in CJK_RANGES)


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def codepoints(text: str) -> np.ndarray:
    """The text's code points as a uint32 array (one per Python character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def cjk_mask(cps: np.ndarray) -> np.ndarray:
    out = np.zeros(cps.shape, dtype=bool)
    for a, b in CJK_RANGES:
        out |= (cps >= a) & (cps <= b)
    return out


_SPACE_TABLE = np.array([chr(i).isspace() for i in range(0x3001)], dtype=bool)


def space_mask(cps: np.ndarray) -> np.ndarray:
    """Whitespace as Python's str.isspace sees it."""
    return _SPACE_TABLE[np.minimum(cps, 0x3000)] & (cps <= 0x3000)
