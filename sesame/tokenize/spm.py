"""Read a SentencePiece ``.model`` file (a ModelProto protobuf) without the
sentencepiece package: just the fields needed to rebuild the model in ``tokenizers``."""
from __future__ import annotations

import dataclasses
import functools
import struct

from sesame.errors import TokenizerError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2


@dataclasses.dataclass
class SpmModel:
    pieces: list[tuple[str, float, int]]  # (piece, score, type)
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    split_by_whitespace: bool = True
    treat_whitespace_as_suffix: bool = False
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise TokenizerError("truncated sentencepiece model (varint runs past the end)")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise TokenizerError(f"not a sentencepiece model: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise TokenizerError("truncated sentencepiece model")
        yield num, wire, val


def _str(v) -> str:
    if not isinstance(v, bytes):
        raise TokenizerError("not a sentencepiece model: a text field has the wrong wire type")
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenizerError("not a sentencepiece model: a piece is not valid UTF-8") from None


def _int(v) -> int:
    if not isinstance(v, int):
        raise TokenizerError("not a sentencepiece model: a number field has the wrong wire type")
    return v


@functools.lru_cache(maxsize=4)
def read_spm(data: bytes) -> SpmModel:
    """The model in ``data``; cached (a 100k-piece model takes seconds to parse), so the
    result is shared: read it, do not change it."""
    model = SpmModel(pieces=[])
    for num, wire, val in _fields(data):
        if num == 1 and wire == 2:
            piece, score, kind = "", 0.0, NORMAL
            for n, w, v in _fields(val):
                if n == 1:
                    piece = _str(v)
                elif n == 2 and w == 5:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = _int(v)
            model.pieces.append((piece, score, kind))
        elif num == 2 and wire == 2:
            for n, _, v in _fields(val):
                if n == 3:
                    model.model_type = _int(v)
                elif n == 35:
                    model.byte_fallback = bool(v)
                elif n == 22:
                    model.split_by_whitespace = bool(v)
                elif n == 24:
                    model.treat_whitespace_as_suffix = bool(v)
        elif num == 3 and wire == 2:
            for n, _, v in _fields(val):
                if n == 1:
                    model.normalizer_name = _str(v)
                elif n == 2 and isinstance(v, bytes):
                    model.precompiled_charsmap = bytes(v)
                elif n == 3:
                    model.add_dummy_prefix = bool(v)
                elif n == 4:
                    model.remove_extra_whitespaces = bool(v)
                elif n == 5:
                    model.escape_whitespaces = bool(v)
    if not model.pieces:
        raise TokenizerError("not a sentencepiece model: it holds no pieces")
    return model
