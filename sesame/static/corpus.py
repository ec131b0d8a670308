"""Words for static embeddings: the documents of ``sesame data prepare``'s readers, split
into words (English: runs of word characters, as the BERT pre-tokenizer splits them;
Chinese: gold words of word/tag input, else jieba), counted into a vocabulary and
encoded as one id stream with document offsets.

Text is streamed: provisional ids go to disk a block at a time and are remapped to the
final vocabulary (most frequent first, ``min_count``) in blocks, so memory holds the
vocabulary, not the corpus. The encoded corpus is cached in the run directory."""
from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from sesame.config.data import DataConfig
from sesame.data.read import read_piece, resolve_inputs
from sesame.errors import DataError
from sesame.static.config import StaticConfig
from sesame.tokenize.chars import has_cjk
from sesame.tokenize.segment import get_segmenter, word_spans

_BLOCK = 1 << 20  # ids per disk write / remap block


@dataclasses.dataclass
class Vocab:
    """Words, most frequent first, with their corpus counts."""

    words: list[str]
    counts: np.ndarray  # int64

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def to_json(self) -> dict:
        return {"words": self.words, "counts": self.counts.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        return cls(list(data["words"]), np.asarray(data["counts"], dtype=np.int64))


def words_of(text: str, gold: list[tuple[int, int]] | None, cfg: StaticConfig) -> list[str]:
    """The words of one document's text (lowercased after splitting, so spans stay valid)."""
    if gold is not None and cfg.segmenter in ("auto", "gold"):
        spans = gold
    else:
        jieba = cfg.segmenter in ("auto", "jieba") and has_cjk(text)
        spans = word_spans(text, get_segmenter("jieba", cfg.user_dict) if jieba else None)
    words = [text[s:e] for s, e in spans]
    if cfg.lowercase:
        words = [w.lower() for w in words]
    if not cfg.punctuation:
        words = [w for w in words if any(c.isalnum() for c in w)]
    return words


def iter_documents(inputs: list[str], cfg: StaticConfig) -> tuple[Iterator[list[str]], int]:
    """(an iterator over the documents' word lists, total input bytes)."""
    dcfg = DataConfig.from_dict({"format": cfg.format, "text_field": cfg.text_field})
    files, _ = resolve_inputs(inputs, dcfg)
    if cfg.segmenter == "gold" and not any(f.format in ("tagged", "conll") for f in files):
        raise DataError("static.segmenter = 'gold' needs pre-segmented input (word/tag or CoNLL files, "
                        "e.g. --format tagged); use 'jieba' for raw Chinese text")

    def docs() -> Iterator[list[str]]:
        for f in files:
            for doc in read_piece(f, 0, f.size, dcfg, Counter()):
                words = words_of(doc.text, doc.words, cfg)
                if words:
                    yield words

    return docs(), sum(f.size for f in files)


@dataclasses.dataclass
class Corpus:
    """The encoded corpus: ``ids`` (int32, final vocabulary ids, dropped words removed) and
    ``doc_starts`` (offsets into ``ids``, one past the end last)."""

    vocab: Vocab
    ids: np.ndarray
    doc_starts: np.ndarray

    @property
    def words(self) -> int:
        return int(len(self.ids))

    def doc_of(self, start: int, end: int) -> np.ndarray:
        """Document index of every position in ``ids[start:end]``."""
        return np.searchsorted(self.doc_starts, np.arange(start, end), side="right") - 1

    def chunks(self, size: int) -> list[tuple[int, int]]:
        n = self.words
        return [(a, min(a + size, n)) for a in range(0, n, size)] or [(0, 0)]


def build_corpus(inputs: list[str], cfg: StaticConfig, cache: Path,
                 progress: Callable[[int], None] | None = None) -> Corpus:
    """Read, count and encode ``inputs`` into ``cache`` (``ids.bin``, ``docs.npy``,
    ``vocab.json``, written atomically); reuse the cache when it is complete."""
    cache = Path(cache)
    if (cache / "vocab.json").is_file():
        return load_corpus(cache)
    cache.mkdir(parents=True, exist_ok=True)
    docs, _ = iter_documents(inputs, cfg)
    index: dict[str, int] = {}
    counts: list[int] = []
    doc_lens: list[int] = []
    buf: list[int] = []
    raw_path = cache / "raw.tmp"
    with open(raw_path, "wb") as raw:
        for words in docs:
            for w in words:
                i = index.get(w)
                if i is None:
                    i = index[w] = len(counts)
                    counts.append(0)
                counts[i] += 1
                buf.append(i)
            doc_lens.append(len(words))
            if len(buf) >= _BLOCK:
                np.asarray(buf, dtype=np.int32).tofile(raw)
                if progress:
                    progress(len(buf))
                buf = []
        np.asarray(buf, dtype=np.int32).tofile(raw)
    if not counts:
        raise DataError(f"no words in {', '.join(inputs)}")
    raw_counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-raw_counts, kind="stable")
    keep = order[raw_counts[order] >= cfg.min_count]
    if cfg.max_vocab:
        keep = keep[:cfg.max_vocab]
    if not len(keep):
        raise DataError(f"no word occurs {cfg.min_count} times; lower static.min_count")
    words_by_id = list(index)
    remap = np.full(len(counts), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    lens = np.asarray(doc_lens, dtype=np.int64)
    ends = np.cumsum(lens)
    raw_ids = np.memmap(raw_path, dtype=np.int32, mode="r") if ends[-1] else np.zeros(0, np.int32)
    out_tmp = cache / "ids.bin.tmp"
    new_lens = np.zeros_like(lens)
    with open(out_tmp, "wb") as out:
        for a in range(0, len(raw_ids), _BLOCK):
            mapped = remap[raw_ids[a:a + _BLOCK]]
            kept = mapped >= 0
            doc = np.searchsorted(ends, np.arange(a, a + len(mapped)), side="right")
            new_lens += np.bincount(doc[kept], minlength=len(lens))
            mapped[kept].astype(np.int32).tofile(out)
    del raw_ids
    os.replace(out_tmp, cache / "ids.bin")
    raw_path.unlink()
    starts = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64)
    np.save(cache / "docs.npy", starts)
    vocab = Vocab([words_by_id[i] for i in keep], raw_counts[keep])
    meta = {**vocab.to_json(), "raw_words": int(raw_counts.sum()), "raw_types": len(counts),
            "documents": len(lens), "inputs": list(inputs)}
    tmp = cache / "vocab.json.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, cache / "vocab.json")
    return load_corpus(cache)


def load_corpus(cache: Path) -> Corpus:
    cache = Path(cache)
    vocab = Vocab.from_json(json.loads((cache / "vocab.json").read_text(encoding="utf-8")))
    ids = np.fromfile(cache / "ids.bin", dtype=np.int32)
    return Corpus(vocab, ids, np.load(cache / "docs.npy"))


def corpus_from_words(docs: list[list[str]], min_count: int = 1) -> Corpus:
    """A corpus from word lists in memory (tests, small experiments)."""
    counts = Counter(w for d in docs for w in d)
    words = [w for w, c in sorted(counts.items(), key=lambda x: -x[1]) if c >= min_count]
    vocab = Vocab(words, np.asarray([counts[w] for w in words], dtype=np.int64))
    enc = [[vocab.index[w] for w in d if w in vocab.index] for d in docs]
    lens = np.asarray([len(d) for d in enc], dtype=np.int64)
    ids = np.asarray([i for d in enc for i in d], dtype=np.int32)
    return Corpus(vocab, ids, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64))
