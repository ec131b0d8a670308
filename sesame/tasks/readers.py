"""Readers for the two named-set layouts that are not tables: C3's nested JSON lists and
Multi30k's line-aligned gzip pairs. Every other named set, and every user file, is read
by ``sesame.tasks.files`` (the named sets are presets over it: ``sesame.tasks.datasets``).

Bad input raises a ``DataError`` that names the file (and line); decisions are counted in
``Dataset.counts``."""
from __future__ import annotations

import collections
from pathlib import Path

from sesame.errors import DataError
from sesame.tasks.examples import ChoiceExample, Dataset, PairExample
from sesame.tasks.tables import decode, load_json


def _check(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


# ---------------------------------------------------------------- multiple choice


def read_c3(path) -> Dataset:
    """C3: a JSON list of ``[paragraph lines, questions, id]``; each question has
    ``choice`` (2-4 options) and ``answer`` (absent in the test split)."""
    path = _check(path)
    data, _ = load_json(path, strict=True)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of [paragraphs, questions, id]")
    out = []
    for k, doc in enumerate(data):
        if not isinstance(doc, list) or len(doc) < 2:
            raise DataError(f"{path}: document {k} is not [paragraphs, questions, id]")
        context = "\n".join(doc[0])
        doc_id = str(doc[2]) if len(doc) > 2 else str(k)
        for j, q in enumerate(doc[1]):
            options = q.get("choice")
            if not options or "question" not in q:
                raise DataError(f"{path}: document {doc_id}, question {j}: needs 'question' and 'choice'")
            label = None
            if "answer" in q:
                if q["answer"] not in options:
                    raise DataError(f"{path}: document {doc_id}, question {j}: answer {q['answer']!r} "
                                    f"is not one of the choices {options}")
                label = options.index(q["answer"])
            out.append(ChoiceExample(context, list(options), q["question"], label, None,
                                     str(q.get("id", f"{doc_id}-{j}"))))
    return Dataset(out, [], str(path), {})



def read_multi30k(folder, split: str = "train", source: str = "en", target: str = "de") -> Dataset:
    """Multi30k task 1: ``{split}.{lang}.gz`` line-aligned files (split: train, val,
    test_2016_flickr, ...). Pairs with an empty side are skipped and counted."""
    folder = Path(folder)
    src_path, tgt_path = _check(folder / f"{split}.{source}.gz"), _check(folder / f"{split}.{target}.gz")
    src, tgt = (list(enumerate(decode(p, strict=True)[0].split("\n"), 1)) for p in (src_path, tgt_path))
    src, tgt = (x[:-1] if x and not x[-1][1] else x for x in (src, tgt))
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; they must align")
    out, counts = [], collections.Counter()
    for (n, a), (_, b) in zip(src, tgt):
        if not a.strip() or not b.strip():
            counts["empty_pairs"] += 1
            continue
        out.append(PairExample(a.strip(), b.strip(), str(n)))
    return Dataset(out, [], f"{src_path} + {tgt_path}", dict(counts))


# ---------------------------------------------------------------- the file readers under their old names


def read_tsv(path) -> Dataset:
    """A classification TSV with a header (``label``, ``text`` / ``sentence`` / ...): ``files.read_file``."""
    from sesame.tasks.files import read_file

    return read_file(path, {"format": "tsv"})


def read_conll(path) -> Dataset:
    """A CoNLL column file (token first, tag last): ``files.read_file`` for tagging."""
    from sesame.tasks.files import read_file

    return read_file(path, {"task": "tagging", "format": "conll"})


def read_squad(path) -> Dataset:
    """SQuAD-layout JSON, every question kept (answers located or counted): ``files.read_file`` for QA."""
    from sesame.tasks.files import read_file

    return read_file(path, {"task": "qa", "format": "json"}, train=False)
