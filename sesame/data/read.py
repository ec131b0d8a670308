"""Reading raw inputs: files, directories and globs of plain text, JSONL, TSV, ``word/tag``
and CoNLL files, split into documents, with every bad-input decision counted.

Invalid UTF-8 is replaced (U+FFFD) and the replaced bytes counted per file; empty and
whitespace-only lines are counted; binary files are refused before any work starts.
"""
from __future__ import annotations

import codecs
import dataclasses
import glob
import gzip
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from sesame.config.data import DataConfig
from sesame.errors import DataError
from sesame.tokenize.chars import has_cjk
from sesame.tokenize.entities import iob_entities, tagged_entities
from sesame.tokenize.segment import parse_tagged

Span = tuple[int, int]
HEAD = 1 << 20  # bytes read up front to check a file
BLOCK = 1 << 22  # bytes decoded at a time

DEFAULT_EXTENSIONS = {
    "auto": (".txt", ".text", ".jsonl", ".tsv", ".gz"),
    "text": (".txt", ".text", ".gz"),
    "jsonl": (".jsonl", ".json", ".gz"),
    "tsv": (".tsv", ".gz"),
    "tagged": (".txt", ".gz"),
    "conll": (".txt", ".conll", ".gz"),
}
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13, 27))
_MAGIC = {b"PK\x03\x04": "a zip archive", b"%PDF": "a PDF", b"\x89PNG": "a PNG image",
          b"\xff\xd8\xff": "a JPEG image", b"\x7fELF": "an executable", b"BZh": "a bzip2 archive",
          b"\xfd7zXZ": "an xz archive", b"\x93NUMPY": "a numpy array", b"\x80\x04": "a Python pickle"}


@dataclasses.dataclass
class Document:
    """One document: its text and, when the input carries them, gold sentence and word
    spans and entity spans (start, end, type), all in characters of ``text``."""

    text: str
    sentences: list[Span] | None = None
    words: list[Span] | None = None
    entities: list[tuple[int, int, str]] | None = None


@dataclasses.dataclass
class InputFile:
    path: str
    format: str
    boundary: str
    size: int
    mtime_ns: int
    column: int = 0  # TSV text column
    header: bool = False  # TSV: the first line names the columns
    gz: bool = False
    cjk: bool = False  # CJK characters in the first megabyte


# ---- UTF-8 with counted replacement ---------------------------------------------------
_replaced = [0]


def _count_replace(err: UnicodeDecodeError):
    _replaced[0] += err.end - err.start
    return "\ufffd", err.end


codecs.register_error("sesame-count", _count_replace)


def decode_utf8(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing invalid bytes with U+FFFD; returns (text, bytes replaced)."""
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        _replaced[0] = 0
        text = data.decode("utf-8", errors="sesame-count")
        return text, _replaced[0]


# ---- choosing and checking input files ------------------------------------------------
def binary_reason(head: bytes) -> str | None:
    """Why ``head`` (the start of a file) is not text, or None when it looks like text."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text (convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8)"
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    nul = head.find(b"\x00")
    if nul >= 0:
        return f"binary data (a NUL byte at offset {nul})"
    if head:
        control = len(head) - len(head.translate(None, _CONTROL))
        if control > 0.05 * len(head):
            return f"binary data ({control} control bytes in the first {len(head)})"
    return None


def _read_head(path: Path, gz: bool) -> bytes:
    try:
        if gz:
            with gzip.open(path, "rb") as fh:
                return fh.read(HEAD)
        with open(path, "rb") as fh:
            return fh.read(HEAD)
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}") from None


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    return "text"


def _boundary_of(fmt: str, boundary: str, head_text: str) -> str:
    if fmt in ("jsonl", "tsv"):
        return "record"
    if fmt == "conll":
        if boundary == "auto":
            return "docstart" if "-DOCSTART-" in head_text else "blank"
        return boundary
    if boundary != "auto":
        return boundary
    if fmt == "tagged":
        return "line"
    return "blank" if re.search(r"\n[^\S\n]*\n", head_text.strip()) else "line"


def expand_inputs(inputs: list[str], cfg: DataConfig) -> tuple[list[Path], list[str]]:
    """Files, directories (searched recursively) and globs -> (files, skipped paths).
    Files found in directories must have one of the format's extensions."""
    if not inputs:
        raise DataError("no inputs: give text files, directories or glob patterns")
    suffixes = tuple(cfg.extensions) if cfg.extensions is not None else DEFAULT_EXTENSIONS[cfg.format]
    files: list[Path] = []
    skipped: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if not p.is_file() or any(s.startswith(".") for s in p.relative_to(path).parts):
                    continue
                if p.name.endswith(suffixes):
                    files.append(p)
                else:
                    skipped.append(str(p))
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise DataError(f"the pattern {item!r} matches no files")
            files += found
        else:
            raise DataError(f"input {item!r} does not exist; give files, directories or glob patterns")
    seen: set[Path] = set()
    unique = []
    for p in files:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    if not unique:
        raise DataError(
            f"no input files with extensions {', '.join(suffixes)} in {', '.join(inputs)}; "
            "set data.extensions (--ext) or name the files"
        )
    return unique, skipped


def resolve_inputs(inputs: list[str], cfg: DataConfig) -> tuple[list[InputFile], list[str]]:
    """Expand inputs and check each file: refuse binary files, pick its format and
    document boundary, find a TSV column by header name."""
    paths, skipped = expand_inputs(inputs, cfg)
    out = []
    for path in paths:
        gz = path.name.endswith(".gz")
        head = _read_head(path, gz)
        reason = binary_reason(head)
        if reason:
            raise DataError(
                f"{path} looks like {reason}, not UTF-8 text; remove it from the inputs "
                "(or narrow a directory input with --ext / a glob)"
            )
        fmt = _format_of(path, cfg.format)
        head_text = decode_utf8(head)[0]
        column, header = _tsv_column(path, cfg.column, head_text) if fmt == "tsv" else (0, False)
        stat = path.stat()
        out.append(InputFile(str(path.resolve()), fmt, _boundary_of(fmt, cfg.doc_boundary, head_text),
                             stat.st_size, stat.st_mtime_ns, column, header, gz, has_cjk(head_text)))
    return out, skipped


def _tsv_column(path: Path, column: int | str, head_text: str) -> tuple[int, bool]:
    """(column index, whether the first line is a header to skip)."""
    if isinstance(column, int):
        return column, False
    header = head_text.split("\n", 1)[0].rstrip("\r").split("\t")
    if column not in header:
        raise DataError(f"{path}: no column named {column!r} in the header {header}; use its name or index")
    return header.index(column), True


# ---- planning pieces of files --------------------------------------------------------
def split_points(f: InputFile, target: int) -> list[int]:
    """Byte offsets where ``f`` may be cut into pieces of about ``target`` bytes without
    cutting a document."""
    points = [0]
    if f.gz or f.boundary in ("file", "docstart") or f.size <= target:
        return points + [f.size]
    pattern = re.compile(rb"\n[^\S\n]*\n" if f.boundary == "blank" else rb"\n")
    with open(f.path, "rb") as fh:
        pos = target
        while pos < f.size:
            fh.seek(pos)
            buf = b""
            cut = None
            while cut is None:
                chunk = fh.read(1 << 16)
                if not chunk:
                    break
                buf += chunk
                m = pattern.search(buf)
                if m:
                    cut = pos + m.end()
            if cut is None or cut >= f.size:
                break
            points.append(cut)
            pos = cut + target
    return points + [f.size]


# ---- reading documents ---------------------------------------------------------------
class PieceReader:
    """Reads one byte range of a file as lines, counting lines, empty and
    whitespace-only lines and replaced bytes into ``stats``; ``bytes_done`` grows as it goes."""

    def __init__(self, f: InputFile, start: int, end: int, stats: Counter):
        self.f, self.start, self.end, self.stats = f, start, end, stats
        self.bytes_done = 0

    def lines(self) -> Iterator[str]:
        f, stats = self.f, self.stats
        opener = gzip.open if f.gz else open
        with opener(f.path, "rb") as fh:
            if not f.gz:
                fh.seek(self.start)
            remaining = None if f.gz else self.end - self.start
            carry = b""
            while True:
                want = BLOCK if remaining is None else min(BLOCK, remaining)
                block = fh.read(want) if want > 0 else b""
                if remaining is not None:
                    remaining -= len(block)
                if not block:
                    data, carry = carry, b""
                else:
                    data = carry + block
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        carry = data
                        continue
                    data, carry = data[:cut + 1], data[cut + 1:]
                if not data:
                    break
                text, bad = decode_utf8(data)
                stats["invalid_utf8_bytes"] += bad
                stats["bytes"] += len(data)
                parts = text.split("\n")
                if parts and parts[-1] == "":
                    parts.pop()
                for line in parts:
                    if line.endswith("\r"):
                        line = line[:-1]
                    stats["lines"] += 1
                    if not line:
                        stats["empty_lines"] += 1
                    elif line.isspace():
                        stats["whitespace_lines"] += 1
                    yield line
                self.bytes_done += len(data)
                if not block:
                    break


def read_piece(f: InputFile, start: int, end: int, cfg: DataConfig, stats: Counter,
               reader: PieceReader | None = None) -> Iterator[Document]:
    """Documents of one piece of one file, in order."""
    reader = reader or PieceReader(f, start, end, stats)
    lines = reader.lines()
    if f.format == "jsonl":
        yield from _jsonl(lines, cfg.text_field, stats, f.path, start)
    elif f.format == "tsv":
        yield from _tsv(lines, f, start, stats)
    elif f.format == "conll":
        yield from _conll(lines, f.boundary, stats)
    elif f.format == "tagged":
        yield from _tagged(lines, f.boundary, stats, f.path, start)
    else:
        yield from _text(lines, f.boundary, stats)


def _emit(text: str, stats: Counter) -> Document | None:
    text = text.strip()
    if not text:
        stats["empty_documents"] += 1
        return None
    return Document(text)


def _text(lines: Iterator[str], boundary: str, stats: Counter) -> Iterator[Document]:
    if boundary == "line":
        for line in lines:
            if line and not line.isspace():
                yield Document(line.strip())
        return
    if boundary == "file":
        doc = _emit("\n".join(lines), stats)
        if doc:
            yield doc
        return
    group: list[str] = []
    for line in lines:
        if not line or line.isspace():
            if group:
                yield Document("\n".join(group).strip())
                group = []
        else:
            group.append(line)
    if group:
        yield Document("\n".join(group).strip())


def _bad(stats: Counter, path: str, start: int, n: int, why: str) -> None:
    """Count an unreadable record and keep a few examples (line numbers count from the
    start of the file, or of the piece when a large file was split)."""
    where = f"line {n + 1}" if start == 0 else f"line {n + 1} after byte {start}"
    stats["bad_records"] += 1
    key = "bad_record_examples"
    if len(stats.get(key, ())) < 5:
        stats[key] = list(stats.get(key, [])) + [f"{Path(path).name} {where}: {why}"]


def _jsonl(lines, field: str, stats: Counter, path: str, start: int) -> Iterator[Document]:
    for n, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            _bad(stats, path, start, n, f"invalid JSON ({err.msg})")
            continue
        value = record.get(field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            _bad(stats, path, start, n, f"no string field {field!r}")
            continue
        doc = _emit(value, stats)
        if doc:
            yield doc


def _tsv(lines, f: InputFile, start: int, stats: Counter) -> Iterator[Document]:
    column, header = f.column, f.header
    for n, line in enumerate(lines):
        if header and start == 0 and n == 0:
            continue
        if not line or line.isspace():
            continue
        cells = line.split("\t")
        if column >= len(cells):
            _bad(stats, f.path, start, n, f"no column {column} (the line has {len(cells)})")
            continue
        doc = _emit(cells[column], stats)
        if doc:
            yield doc


def _tagged(lines, boundary: str, stats: Counter, path: str, start: int) -> Iterator[Document]:
    group: list[tuple[str, list[Span], list[str]]] = []

    def flush() -> Document | None:
        text, words, tags, pos = [], [], [], 0
        for t, w, g in group:
            if text:
                text.append("\n")
                pos += 1
            text.append(t)
            words += [(s + pos, e + pos) for s, e in w]
            tags += g
            pos += len(t)
        group.clear()
        if not words:
            return None
        return Document("".join(text), words=words, entities=tagged_entities(words, tags))

    for n, line in enumerate(lines):
        if not line or line.isspace():
            if boundary != "line" and group:
                doc = flush()
                if doc:
                    yield doc
            continue
        try:
            group.append(parse_tagged(line))
        except DataError as err:
            _bad(stats, path, start, n, str(err))
            continue
        if boundary == "line":
            doc = flush()
            if doc:
                yield doc
    if group:
        doc = flush()
        if doc:
            yield doc


def _conll(lines, boundary: str, stats: Counter) -> Iterator[Document]:
    sents: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, str]] = []

    def build() -> Document | None:
        text, sentences, words, tags, pos = [], [], [], [], 0
        for sent in sents:
            s0 = pos
            for tok, tag in sent:
                if text:
                    text.append(" ")
                    pos += 1
                words.append((pos, pos + len(tok)))
                tags.append(tag)
                text.append(tok)
                pos += len(tok)
            sentences.append((s0, pos))
        sents.clear()
        if not words:
            return None
        # sentence spans partition the text: the joining space leads the next sentence
        parts = [(sentences[i][0] - (1 if i else 0), sentences[i + 1][0] - 1 if i + 1 < len(sentences) else pos)
                 for i in range(len(sentences))]
        return Document("".join(text), sentences=parts, words=words, entities=iob_entities(words, tags))

    for line in lines:
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            if cur:
                sents.append(cur)
                cur = []
            if sents:
                doc = build()
                if doc:
                    yield doc
            continue
        if not fields:
            if cur:
                sents.append(cur)
                cur = []
                if boundary != "docstart":
                    doc = build()
                    if doc:
                        yield doc
            continue
        cur.append((fields[0], fields[-1] if len(fields) > 1 else "O"))
    if cur:
        sents.append(cur)
    if sents:
        doc = build()
        if doc:
            yield doc


def doc_hash(text: str) -> int:
    """64-bit hash of a document's text, for exact duplicate detection."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def iter_texts(inputs: list[str], cfg: DataConfig | None = None, stats: Counter | None = None) -> Iterator[str]:
    """Document texts of ``inputs`` (any supported format), e.g. to train a tokenizer.
    The inputs are checked now; the texts are read as the iterator is consumed, counting
    lines, replaced invalid-UTF-8 bytes and skipped records into ``stats`` when given."""
    cfg = cfg or DataConfig()
    files, _ = resolve_inputs(inputs, cfg)
    stats = Counter() if stats is None else stats

    def texts() -> Iterator[str]:
        for f in files:
            for doc in read_piece(f, 0, f.size, cfg, stats):
                yield doc.text

    return texts()
