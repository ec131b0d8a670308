"""Intrinsic evaluation: Spearman's rho on word-similarity sets (``word1 word2 score``
lines), and analogy accuracy on ``questions-words.txt`` by 3CosAdd and 3CosMul over the
most frequent ``restrict`` words, as word2vec's compute-accuracy does (questions with a
word outside them are counted, not answered)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sesame.errors import DataError
from sesame.static.vectors import Vectors


def ranks(x) -> np.ndarray:
    """Ranks from 0, ties given their mean rank."""
    x = np.asarray(x, dtype=np.float64)
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, inv = np.unique(x, return_inverse=True)
    return (np.bincount(inv, weights=r) / np.bincount(inv))[inv]


def spearman(a, b) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (nan when one side is constant)."""
    ra, rb = ranks(a) - (len(a) - 1) / 2, ranks(b) - (len(b) - 1) / 2
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def read_similarity(path: str | Path) -> list[tuple[str, str, float]]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()):
        parts = line.split()
        if not parts or line.startswith("#"):
            continue
        if len(parts) < 3:
            raise DataError(f"{path} line {n + 1}: expected 'word1 word2 score', got {line!r}")
        out.append((parts[0], parts[1], float(parts[2])))
    return out


def similarity(vectors: Vectors, pairs: list[tuple[str, str, float]], lowercase: bool = True) -> dict:
    """Spearman's rho between the set's scores and cosine similarities, over the pairs whose
    words both have vectors; ``oov`` counts the rest."""
    gold, pred, oov = [], [], 0
    for a, b, score in pairs:
        if lowercase:
            a, b = a.lower(), b.lower()
        va, vb = vectors.vector(a), vectors.vector(b)
        if va is None or vb is None:
            oov += 1
            continue
        gold.append(score)
        pred.append(float(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-12)))
    rho = spearman(gold, pred) if len(gold) > 1 else float("nan")
    return {"rho": rho, "pairs": len(pairs), "found": len(gold), "oov": oov}


def similarity_sets(vectors: Vectors, folder: str | Path) -> dict[str, dict]:
    files = sorted(p for p in Path(folder).glob("*.txt"))
    if not files:
        raise DataError(f"no word-similarity sets (*.txt) in {folder}")
    return {p.stem: similarity(vectors, read_similarity(p)) for p in files}


def read_analogies(path: str | Path) -> dict[str, list[tuple[str, str, str, str]]]:
    sections: dict[str, list] = {}
    current = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            if current is None:
                raise DataError(f"{path}: a question before the first ': section' line")
            a, b, c, d = line.lower().split()
            sections[current].append((a, b, c, d))
    return sections


def analogy(vectors: Vectors, sections: dict[str, list], restrict: int = 30000, batch: int = 256) -> dict:
    """Accuracy by 3CosAdd (argmax cos(x, b - a + c)) and 3CosMul (argmax of
    cos'(x, b) cos'(x, c) / (cos'(x, a) + 0.001) with cos' = (1 + cos) / 2, Levy & Goldberg
    2014) for questions a : b :: c : d, the three question words excluded."""
    n = min(restrict, len(vectors))
    unit = vectors.unit[:n]
    index = {w.lower(): i for i, w in reversed(list(enumerate(vectors.words[:n])))}
    out: dict[str, dict] = {}
    totals = {k: {"questions": 0, "answered": 0, "add": 0, "mul": 0} for k in ("semantic", "syntactic", "all")}
    for name, qs in sections.items():
        known = [[index[w] for w in q] for q in qs if all(w in index for w in q)]
        add = mul = 0
        for s in range(0, len(known), batch):
            q = np.asarray(known[s:s + batch])
            a, b, c = unit[q[:, 0]], unit[q[:, 1]], unit[q[:, 2]]
            target = b - a + c
            sims_add = target @ unit.T
            ca, cb, cc = ((x @ unit.T + 1) / 2 for x in (a, b, c))
            sims_mul = cb * cc / (ca + 1e-3)
            rows = np.arange(len(q))[:, None]
            for sims in (sims_add, sims_mul):
                sims[rows, q[:, :3]] = -np.inf
            add += int((sims_add.argmax(1) == q[:, 3]).sum())
            mul += int((sims_mul.argmax(1) == q[:, 3]).sum())
        row = {"questions": len(qs), "answered": len(known), "add": add, "mul": mul}
        out[name] = {**row, "acc_add": add / max(len(known), 1), "acc_mul": mul / max(len(known), 1)}
        kind = "syntactic" if name.startswith("gram") else "semantic"
        for k in (kind, "all"):
            for f in row:
                totals[k][f] += row[f]
    for k, t in totals.items():
        out[k] = {**t, "acc_add": t["add"] / max(t["answered"], 1), "acc_mul": t["mul"] / max(t["answered"], 1)}
    return out


def evaluate(vectors: Vectors, wordsim: str | Path | None, analogies: str | Path | None,
             restrict: int = 30000) -> dict:
    out = {}
    if wordsim:
        out["similarity"] = similarity_sets(vectors, wordsim)
    if analogies:
        out["analogy"] = analogy(vectors, read_analogies(analogies), restrict)
    return out
