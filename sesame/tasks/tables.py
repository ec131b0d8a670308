"""Reading a labeled file into rows: CSV (RFC 4180: quoted fields may hold commas,
quotes and newlines), TSV (tab-separated, no quoting), JSON Lines, JSON (a list of
records), Parquet (needs ``pyarrow``), and in-memory tables (a pandas DataFrame, a
``datasets.Dataset``). CoNLL column files are read by ``read_columns``.

A ``Table`` is the column names and ``(where, values)`` rows, where ``where`` names the
file and line (``reviews.csv:17``) for messages. Every decision on the way is counted
in ``Table.counts``: invalid UTF-8 lines (replaced with U+FFFD, or refused with
``strict``), blank lines, ``-DOCSTART-`` lines."""
from __future__ import annotations

import collections
import csv
import dataclasses
import gzip
import io
import json
from pathlib import Path
from typing import Any

from sesame.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "json", "conll", "parquet")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
              ".conll": "conll", ".conllu": "conll", ".iob": "conll", ".bio": "conll", ".parquet": "parquet",
              ".pq": "parquet"}


@dataclasses.dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[tuple[str, list[Any]]]
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    header: bool = True


def detect_format(path: str | Path, task: str | None = None) -> str:
    """The format named by the extension (``.gz`` looked through); ``.txt`` is CoNLL for
    tagging and TSV otherwise."""
    path = Path(path)
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    fmt = EXTENSIONS.get(suffix.lower())
    if fmt is None and suffix.lower() in (".txt", ""):
        fmt = "conll" if task == "tagging" else "tsv"
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the extension {suffix!r}; pass --format "
                        f"({', '.join(FORMATS)})")
    return fmt


def decode(path: str | Path, strict: bool = False) -> tuple[str, collections.Counter]:
    """The file's text (gzip by suffix, BOM dropped). Invalid UTF-8 is replaced and its
    lines counted (``invalid_utf8_lines``), or refused with the line number when ``strict``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    counts: collections.Counter = collections.Counter()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        lines = raw.split(b"\n")
        out = []
        for n, line in enumerate(lines, 1):
            try:
                out.append(line.decode("utf-8"))
            except UnicodeDecodeError as err:
                if strict:
                    raise DataError(f"{path}:{n}: not valid UTF-8 ({err.reason} at byte {err.start}); "
                                    "fix the file, or drop --strict to replace such bytes") from None
                counts["invalid_utf8_lines"] += 1
                out.append(line.decode("utf-8", errors="replace"))
        text = "\n".join(out)
    return text.lstrip("\ufeff"), counts


def _names(first: list[str], header: bool) -> list[str]:
    return [c.strip() for c in first] if header else [str(i) for i in range(len(first))]


def read_delimited(path, delimiter: str, header: bool = True, strict: bool = False) -> Table:
    """CSV (``delimiter=','``, RFC 4180 quoting) or TSV (``'\\t'``, no quoting: a quote is text)."""
    text, counts = decode(path, strict)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    rows: list[tuple[str, list]] = []
    columns: list[str] | None = None
    line = 1
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields or all(not f.strip() for f in fields):
                counts["blank_lines"] += 1
                continue
            if columns is None:
                columns = _names(fields, header)
                if header:
                    continue
            if len(fields) != len(columns):
                raise DataError(f"{path}:{start}: {len(fields)} field(s) but the {'header' if header else 'first row'}"
                                f" has {len(columns)} ({', '.join(columns)}); check the delimiter"
                                f"{' and quoting' if delimiter != chr(9) else ''}")
            rows.append((f"{Path(path).name}:{start}", fields))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: {err}") from None
    if columns is None:
        raise DataError(f"{path}: the file is empty")
    if not rows:
        raise DataError(f"{path}: only a header ({', '.join(columns)}), no rows")
    return Table(str(path), columns, rows, counts, header)


def from_records(records: list[dict], path: str, where: list[str], counts=None) -> Table:
    if not records:
        raise DataError(f"{path}: no records")
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows = [(w, [r.get(c) for c in columns]) for w, r in zip(where, records)]
    return Table(path, columns, rows, counts or collections.Counter())


def read_jsonl(path, strict: bool = False) -> Table:
    text, counts = decode(path, strict)
    records, where = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            counts["blank_lines"] += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        records.append(obj)
        where.append(f"{Path(path).name}:{n}")
    if not records:
        raise DataError(f"{path}: the file is empty")
    return from_records(records, str(path), where, counts)


def load_json(path, strict: bool = False) -> tuple[Any, collections.Counter]:
    text, counts = decode(path, strict)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        return json.loads(text), counts
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def records_table(data: Any, path, counts) -> Table:
    """A JSON list of records (or ``{"data": [...]}``) as a table."""
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON list of records (objects), or SQuAD layout for QA")
    return from_records(data, str(path), [f"{Path(path).name}: record {i + 1}" for i in range(len(data))], counts)


def read_parquet(path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install 'sesame[parquet]'), or save "
                        "the table as CSV / JSON Lines") from None
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    records = pq.read_table(path).to_pylist()
    return from_records(records, str(path), [f"{Path(path).name}: row {i + 1}" for i in range(len(records))])


def from_frame(obj: Any, name: str) -> Table:
    """A pandas DataFrame or a ``datasets.Dataset`` as a table (nothing imported here)."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns") and hasattr(obj, "iloc"):  # pandas
        records = obj.to_dict(orient="records")
    elif hasattr(obj, "column_names") and hasattr(obj, "to_list"):  # datasets.Dataset
        records = obj.to_list()
    else:
        raise DataError(f"{name}: expected a path, a pandas DataFrame or a datasets.Dataset, got "
                        f"{type(obj).__name__}")
    return from_records(records, name, [f"{name}: row {i}" for i in range(len(records))])


def read_table(path, fmt: str, delimiter: str | None = None, header: bool = True, strict: bool = False) -> Table:
    if fmt == "csv":
        return read_delimited(path, delimiter or ",", header, strict)
    if fmt == "tsv":
        return read_delimited(path, delimiter or "\t", header, strict)
    if fmt == "jsonl":
        return read_jsonl(path, strict)
    if fmt == "json":
        data, counts = load_json(path, strict)
        return records_table(data, path, counts)
    if fmt == "parquet":
        return read_parquet(path)
    raise DataError(f"{path}: format {fmt!r} is not a table format ({', '.join(FORMATS)})")


# ---------------------------------------------------------------- CoNLL columns


def read_columns(path, tokens: int = 0, tags: int = -1, delimiter: str | None = None, strict: bool = False
                 ) -> tuple[list[tuple[str, list[str], list[str]]], collections.Counter]:
    """A CoNLL-style column file: one token per line, the token in column ``tokens`` and its
    tag in column ``tags`` (indices; negative from the end), blank lines between sentences,
    ``-DOCSTART-`` lines skipped (counted). ``delimiter=None`` splits on whitespace.
    Returns ``(where, words, tags)`` per sentence."""
    text, counts = decode(path, strict)
    out: list[tuple[str, list[str], list[str]]] = []
    words: list[str] = []
    labels: list[str] = []
    start = 1
    name = Path(path).name
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            if words:
                out.append((f"{name}:{start}", words, labels))
            words, labels, start = [], [], n + 1
            continue
        fields = line.split(delimiter) if delimiter else line.split()
        if fields[0] == "-DOCSTART-":
            counts["docstart_lines"] += 1
            start = n + 1
            continue
        try:
            word, tag = fields[tokens].strip(), fields[tags].strip()
        except IndexError:
            raise DataError(f"{path}:{n}: {len(fields)} column(s), but the token is column {tokens} and the tag "
                            f"column {tags}: a token without its tag? got {line!r}") from None
        if len(fields) < 2 or not word or not tag:
            raise DataError(f"{path}:{n}: expected a token and a tag, got {line!r}")
        words.append(word)
        labels.append(tag)
    if words:
        out.append((f"{name}:{start}", words, labels))
    if not out:
        raise DataError(f"{path}: no sentences (the file is empty or holds only -DOCSTART- lines)")
    return out, counts
