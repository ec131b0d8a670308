"""Corpus shards on disk, and the ``Corpus`` reader.

A prepared corpus is a directory::

    meta.json        totals, settings, per-file bad-input counts (written last)
    plan.json        the shard plan, for resuming an interrupted preparation
    tokenizer.json   the tokenizer that made the ids
    shard-00000/     one per planned piece of input; present only when finished
      tokens.bin     token ids, uint16 when the vocabulary fits, else uint32
      words.bin      uint8 per token: 1 where a word starts
      docs.idx       int64 token offsets of document starts, plus the end
      sents.idx      int64 token offsets of sentence starts, plus the end
      entities.bin   int64 rows (start token, end token, type id), sorted, non-overlapping
      hashes.bin     uint64 hash of each document's text (duplicate detection)
      meta.json      counts and bad-input statistics of this shard

Arrays are raw little-endian binaries, memory-mapped when read; nothing is pickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from sesame.errors import DataError

FORMAT_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class ShardWriter:
    """Streams documents into ``<dir>.tmp`` and renames it to ``<dir>`` on ``close``,
    so a shard directory exists only when it is complete."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.dtype = dtype
        self._tokens = open(self.tmp / "tokens.bin", "wb")
        self._words = open(self.tmp / "words.bin", "wb")
        self.doc_lengths: list[np.ndarray] = []
        self.sent_lengths: list[np.ndarray] = []
        self.entities: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []
        self.num_tokens = 0

    def add(self, ids: np.ndarray, word_starts: np.ndarray, doc_lengths: np.ndarray,
            sent_lengths: np.ndarray, entities: np.ndarray, hashes: np.ndarray) -> None:
        """Append a batch of documents. ``entities``: (k, 3) rows with token offsets
        relative to the start of this batch."""
        if len(ids) != len(word_starts) or int(doc_lengths.sum()) != len(ids) \
                or int(sent_lengths.sum()) != len(ids) or len(hashes) != len(doc_lengths):
            raise DataError("internal error: inconsistent shard batch")  # pragma: no cover
        self._tokens.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self._words.write(np.ascontiguousarray(word_starts, dtype=np.uint8).tobytes())
        self.doc_lengths.append(np.asarray(doc_lengths, dtype=np.int64))
        self.sent_lengths.append(np.asarray(sent_lengths, dtype=np.int64))
        ent = np.asarray(entities, dtype=np.int64).reshape(-1, 3).copy()
        ent[:, :2] += self.num_tokens
        self.entities.append(ent)
        self.hashes.append(np.asarray(hashes, dtype=np.uint64))
        self.num_tokens += len(ids)

    def close(self, meta: dict) -> dict:
        self._tokens.close()
        self._words.close()

        def offsets(parts):
            lengths = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

        docs, sents = offsets(self.doc_lengths), offsets(self.sent_lengths)
        docs.tofile(self.tmp / "docs.idx")
        sents.tofile(self.tmp / "sents.idx")
        ent = np.concatenate(self.entities) if self.entities else np.zeros((0, 3), np.int64)
        ent.tofile(self.tmp / "entities.bin")
        hashes = np.concatenate(self.hashes) if self.hashes else np.zeros(0, np.uint64)
        hashes.tofile(self.tmp / "hashes.bin")
        meta = dict(meta, version=FORMAT_VERSION, tokens_dtype=self.dtype.name, num_tokens=self.num_tokens,
                    num_docs=len(docs) - 1, num_sentences=len(sents) - 1, num_entities=len(ent))
        write_json(self.tmp / "meta.json", meta)
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        return meta


def _fromfile(path: Path, dtype, count: int | None = None) -> np.ndarray:
    arr = np.fromfile(path, dtype=dtype)
    if count is not None and len(arr) != count:
        raise DataError(f"{path} holds {len(arr)} values, its meta.json says {count}: the shard is "
                        "corrupt; delete its directory and run `sesame data prepare` again to rebuild it")
    return arr


def _memmap(path: Path, dtype, count: int) -> np.ndarray:
    size = path.stat().st_size if path.exists() else -1
    if size != count * np.dtype(dtype).itemsize:
        raise DataError(f"{path} has {size} bytes, expected {count * np.dtype(dtype).itemsize}: the shard is "
                        "truncated or corrupt; delete it and run `sesame data prepare` again")
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class Shard:
    """One finished shard, memory-mapped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{self.path} is not a finished shard (no meta.json); resume the preparation")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        n = self.meta["num_tokens"]
        self.tokens = _memmap(self.path / "tokens.bin", np.dtype(self.meta["tokens_dtype"]), n)
        self.words = _memmap(self.path / "words.bin", np.uint8, n)
        self.docs = _fromfile(self.path / "docs.idx", np.int64, self.meta["num_docs"] + 1)
        self.sents = _fromfile(self.path / "sents.idx", np.int64, self.meta["num_sentences"] + 1)
        self.entities = _fromfile(self.path / "entities.bin", np.int64,
                                  3 * self.meta["num_entities"]).reshape(-1, 3)
        if self.docs[-1] != n or self.sents[-1] != n:
            raise DataError(f"{self.path}: document or sentence offsets do not end at the token count; "
                            "the shard is corrupt, prepare it again")

    def hashes(self) -> np.ndarray:
        return _fromfile(self.path / "hashes.bin", np.uint64, self.meta["num_docs"])

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])


class Corpus:
    """A prepared corpus: the shards seen as one token stream, with document, sentence,
    word-start and entity records in global token coordinates."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            hint = ("the preparation did not finish; run the same `sesame data prepare` command again "
                    "to resume it") if (self.path / "plan.json").is_file() else "prepare it with `sesame data prepare`"
            raise DataError(f"{self.path} is not a prepared corpus (no meta.json): {hint}")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.shards = [Shard(self.path / name) for name in self.meta["shards"]]
        sizes = np.array([s.num_tokens for s in self.shards], dtype=np.int64)
        self.shard_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_tokens = int(self.shard_starts[-1])

        def join(attr):
            parts = [getattr(s, attr)[:-1] + base for s, base in zip(self.shards, self.shard_starts)]
            return np.concatenate(parts + [np.array([self.num_tokens], np.int64)]).astype(np.int64)

        self.doc_offsets = join("docs")
        self.sent_offsets = join("sents")
        self.entity_types: list[str] = self.meta.get("entity_types", [])
        ents = []
        for s, base in zip(self.shards, self.shard_starts):  # shard-local type ids -> corpus ids
            remap = np.array([self.entity_types.index(t) for t in s.meta.get("entity_types", [])] or [0])
            e = s.entities.copy()
            e[:, :2] += base
            e[:, 2] = remap[e[:, 2]]
            ents.append(e)
        self.entities = np.concatenate(ents) if ents else np.zeros((0, 3), np.int64)
        self.num_docs = len(self.doc_offsets) - 1
        self.num_sentences = len(self.sent_offsets) - 1
        self.special_ids: dict[str, int] = self.meta.get("special_ids", {})
        self.vocab_size: int = self.meta["vocab_size"]
        self.tokenizer_hash: str = self.meta["tokenizer_hash"]

    @classmethod
    def open(cls, path: str | Path) -> "Corpus":
        return cls(path)

    def __repr__(self) -> str:
        return (f"Corpus({str(self.path)!r}, docs={self.num_docs}, sentences={self.num_sentences}, "
                f"tokens={self.num_tokens}, entities={len(self.entities)})")

    def tokenizer(self):
        from sesame.tokenize import load_tokenizer

        return load_tokenizer(self.path / "tokenizer.json")

    def _gather(self, attr: str, start: int, end: int) -> np.ndarray:
        if not 0 <= start <= end <= self.num_tokens:
            raise DataError(f"token range [{start}, {end}) is outside the corpus (0..{self.num_tokens})")
        first = int(np.searchsorted(self.shard_starts, start, side="right")) - 1
        parts = []
        pos = start
        k = max(first, 0)
        while pos < end:
            base = self.shard_starts[k]
            stop = min(end, self.shard_starts[k + 1])
            if stop > pos:
                parts.append(np.asarray(getattr(self.shards[k], attr)[pos - base:stop - base]))
            pos = max(pos, stop)
            k += 1
        if not parts:
            return np.zeros(0, dtype=np.uint8 if attr == "words" else self.shards[0].tokens.dtype
                            if self.shards else np.uint32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def tokens(self, start: int, end: int) -> np.ndarray:
        """Token ids in global positions [start, end)."""
        return self._gather("tokens", start, end)

    def word_starts(self, start: int, end: int) -> np.ndarray:
        return self._gather("words", start, end).astype(bool)

    def entities_in(self, start: int, end: int) -> np.ndarray:
        """(k, 3) entity rows overlapping [start, end), clipped to it, global positions."""
        ent = self.entities
        if not len(ent):
            return ent
        lo = int(np.searchsorted(ent[:, 1], start, side="right"))
        hi = int(np.searchsorted(ent[:, 0], end, side="left"))
        out = ent[lo:hi].copy()
        out[:, 0] = np.maximum(out[:, 0], start)
        out[:, 1] = np.minimum(out[:, 1], end)
        return out

    def doc_span(self, index: int) -> tuple[int, int]:
        return int(self.doc_offsets[index]), int(self.doc_offsets[index + 1])

    def doc(self, index: int) -> dict:
        """Document ``index``: ids, word starts, sentence and entity spans relative to it."""
        if not 0 <= index < self.num_docs:
            raise DataError(f"document {index} is outside the corpus (0..{self.num_docs - 1})")
        a, b = self.doc_span(index)
        lo, hi = np.searchsorted(self.sent_offsets, [a, b])
        sents = self.sent_offsets[lo:hi + 1] - a
        ents = self.entities_in(a, b)
        ents[:, :2] -= a
        return {"ids": self.tokens(a, b), "word_starts": self.word_starts(a, b),
                "sentences": np.stack([sents[:-1], sents[1:]], axis=1), "entities": ents}

    def decode_doc(self, index: int) -> str:
        return self.tokenizer().decode(self.doc(index)["ids"].tolist())


def open_corpus(path: str | Path) -> Corpus:
    return Corpus(path)
