"""Word vectors and their files: the word2vec text and binary formats (as gensim's
``KeyedVectors.load_word2vec_format`` reads them) and safetensors + ``vocab.json``
(fastText runs also keep their n-gram rows there, for vectors of unseen words)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from sesame.errors import CheckpointError, DataError

VECTORS, VOCAB = "vectors.safetensors", "vocab.json"


class Vectors:
    """``words`` and their (V, dim) float32 ``matrix``; ``subwords`` (optional) holds the
    fastText n-gram settings and rows for words outside the vocabulary."""

    def __init__(self, words: list[str], matrix: np.ndarray, counts: list[int] | None = None,
                 subwords: dict | None = None, ngrams: np.ndarray | None = None):
        if len(words) != len(matrix):
            raise DataError(f"{len(words)} words but {len(matrix)} vectors")
        self.words = list(words)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.counts = counts
        self.subwords, self.ngrams = subwords, ngrams
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unit = None

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def unit(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero)."""
        if self._unit is None:
            norm = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.maximum(norm, 1e-12)
        return self._unit

    def vector(self, word: str) -> np.ndarray | None:
        """The word's vector; for a fastText model, an unseen word's from its n-grams."""
        i = self.index.get(word)
        if i is not None:
            return self.matrix[i]
        if self.subwords is not None and self.ngrams is not None:
            from sesame.static.subwords import ngram_buckets

            s = self.subwords
            idx = ngram_buckets(word, s["minn"], s["maxn"], s["buckets"])
            if idx:
                return self.ngrams[idx].mean(0)
        return None

    def similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        vec = self.vector(word)
        if vec is None:
            raise DataError(f"{word!r} is not in the vocabulary of {len(self)} words")
        return self.nearest(vec, topn, exclude={word})

    def nearest(self, vec: np.ndarray, topn: int = 10, exclude=()) -> list[tuple[str, float]]:
        q = vec / max(float(np.linalg.norm(vec)), 1e-12)
        sims = self.unit @ q
        order = np.argsort(-sims)
        out = []
        for i in order:
            if self.words[i] not in exclude:
                out.append((self.words[i], float(sims[i])))
                if len(out) == topn:
                    break
        return out

    def analogy(self, a: str, b: str, c: str, topn: int = 5) -> list[tuple[str, float]]:
        """a : b :: c : ?  by 3CosAdd (the nearest to b - a + c, the three excluded)."""
        vecs = []
        for w in (a, b, c):
            v = self.vector(w)
            if v is None:
                raise DataError(f"{w!r} is not in the vocabulary of {len(self)} words")
            vecs.append(v / max(float(np.linalg.norm(v)), 1e-12))
        return self.nearest(vecs[1] - vecs[0] + vecs[2], topn, exclude={a, b, c})

    # ---- files
    def save(self, directory: str | Path, formats=("safetensors", "text", "binary")) -> list[Path]:
        """Write ``vectors.safetensors`` + ``vocab.json``, ``vectors.txt``, ``vectors.bin``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        out = []
        if "safetensors" in formats:
            tensors = {"vectors": self.matrix}
            if self.ngrams is not None:
                tensors["ngrams"] = np.ascontiguousarray(self.ngrams, dtype=np.float32)
            _atomic(d / VECTORS, lambda p: save_file(tensors, str(p), metadata={"library": "sesame"}))
            meta = {"words": self.words, "counts": self.counts, "subwords": self.subwords}
            _atomic(d / VOCAB, lambda p: Path(p).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8"))
            out += [d / VECTORS, d / VOCAB]
        if "text" in formats:
            _atomic(d / "vectors.txt", self.write_text)
            out.append(d / "vectors.txt")
        if "binary" in formats:
            _atomic(d / "vectors.bin", self.write_binary)
            out.append(d / "vectors.bin")
        return out

    def write_text(self, path: str | Path) -> None:
        _check_words(self.words)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{len(self)} {self.dim}\n")
            for w, row in zip(self.words, self.matrix):
                f.write(w + " " + " ".join(f"{x:.6g}" for x in row.tolist()) + "\n")

    def write_binary(self, path: str | Path) -> None:
        _check_words(self.words)
        with open(path, "wb") as f:
            f.write(f"{len(self)} {self.dim}\n".encode())
            for w, row in zip(self.words, self.matrix):
                f.write(w.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")


def _check_words(words: list[str]) -> None:
    bad = next((w for w in words if not w or any(c.isspace() for c in w)), None)
    if bad is not None:
        raise DataError(f"the word {bad!r} holds whitespace, which the word2vec formats cannot store; "
                        "use the safetensors format")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def load_vectors(path: str | Path) -> Vectors:
    """A directory (``vectors.safetensors`` + ``vocab.json``), or a word2vec ``.txt`` /
    ``.bin`` file (binary when it does not decode as a text header line of numbers)."""
    p = Path(path)
    if p.is_dir():
        if not (p / VECTORS).is_file() or not (p / VOCAB).is_file():
            raise CheckpointError(f"{p} holds no {VECTORS} + {VOCAB}; give a vectors directory or a word2vec file")
        try:
            tensors = load_file(str(p / VECTORS))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{p / VECTORS} is truncated or corrupt ({err})") from None
        meta = json.loads((p / VOCAB).read_text(encoding="utf-8"))
        return Vectors(meta["words"], tensors["vectors"], meta.get("counts"), meta.get("subwords"),
                       tensors.get("ngrams"))
    if not p.is_file():
        raise DataError(f"{p} does not exist; give a vectors directory or a word2vec .txt/.bin file")
    with open(p, "rb") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError(f"{p} does not start with a word2vec header line 'COUNT DIM'")
        n, dim = int(header[0]), int(header[1])
        rest = f.read()
    binary = p.suffix == ".bin" or b"\x00" in rest[:4096]
    words, rows = [], []
    if binary:
        pos = 0
        for _ in range(n):
            while rest[pos:pos + 1] in (b"\n", b" "):
                pos += 1
            end = rest.index(b" ", pos)
            words.append(rest[pos:end].decode("utf-8"))
            rows.append(np.frombuffer(rest, dtype="<f4", count=dim, offset=end + 1))
            pos = end + 1 + 4 * dim
    else:
        for line in rest.decode("utf-8").splitlines()[:n]:
            parts = line.rstrip().split(" ")
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    if len(words) != n or any(len(r) != dim for r in rows):
        raise DataError(f"{p} is truncated: its header promises {n} vectors of {dim}")
    return Vectors(words, np.stack(rows) if rows else np.zeros((0, dim), np.float32))
