"""Readers for the labeled sets under ``shared/data/labeled`` and the translation
pairs: each returns a ``Dataset`` of simple examples with its label list.

Bad input (a missing file, a malformed line, a label outside the set) raises a
``DataError`` that names the file and line. Every decision taken on the way
(skipping an empty line or a ``-DOCSTART-``, converting IOB1 tags, relocating an
answer offset) is counted in ``Dataset.counts``."""
from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Iterator

from sesame.errors import DataError
from sesame.tasks.examples import (Answer, ChoiceExample, Dataset, PairExample, QAExample, TagExample,
                                   TextExample)
from sesame.tasks.metrics import iob1_to_bio

# ---------------------------------------------------------------- plumbing


def _check(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline); gzip by suffix; BOM dropped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{n}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            if n == 1:
                line = line.lstrip("\ufeff")
            yield n, line.rstrip("\r\n")


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        yield n, obj


def _field(obj: dict, key: str, path: Path, n: int):
    if key not in obj:
        raise DataError(f"{path}:{n}: missing field {key!r} (fields: {', '.join(obj)})")
    return obj[key]


def _label_list(seen, known: list[str] | None, path: Path) -> list[str]:
    if known is None:
        return sorted(seen, key=lambda x: (len(x), x) if x.lstrip("-").isdigit() else (0, x))
    unknown = sorted(set(seen) - set(known))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not in the label list {known}")
    return list(known)


# ---------------------------------------------------------------- classification


def read_tsv(path, header: bool | None = None, labels: list[str] | None = None) -> Dataset:
    """``label<TAB>text`` or ``text<TAB>label`` (the label column is the one whose values
    are all short integers), with an optional header naming a ``label`` column.
    A header-only ``text_a`` file (no labels) gives unlabeled examples."""
    path = _check(path)
    rows = list(_lines(path))
    counts = collections.Counter()
    if not rows:
        raise DataError(f"{path}: the file is empty")
    first = rows[0][1].split("\t")
    has_header = header if header is not None else not any(re.fullmatch(r"-?\d{1,3}", f) for f in first)
    label_col: int | None
    if has_header:
        names = [f.strip().lower() for f in first]
        label_col = names.index("label") if "label" in names else None
        if label_col is None and len(names) != 1:
            raise DataError(f"{path}:1: header {first} has no 'label' column")
        rows = rows[1:]
    else:
        sample = [r.split("\t") for _, r in rows[:200] if r.strip()]
        cols = [c for c in (0, 1) if all(len(s) == 2 and re.fullmatch(r"-?\d{1,3}", s[c]) for s in sample)]
        if not cols:
            raise DataError(f"{path}:1: no header and no column of integer labels; expected label<TAB>text")
        label_col = cols[0]
    width = 1 if label_col is None else 2
    out, seen = [], set()
    for n, line in rows:
        if not line.strip():
            counts["empty_lines"] += 1
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise DataError(f"{path}:{n}: expected {width} tab-separated fields, got {len(fields)}")
        label = None if label_col is None else fields[label_col].strip()
        text = fields[0 if label_col is None else 1 - label_col].strip()
        if label is not None and not re.fullmatch(r"-?\d+", label):
            raise DataError(f"{path}:{n}: label {label!r} is not an integer")
        if not text:
            counts["empty_texts"] += 1
            continue
        out.append(TextExample(text, None, label, f"{path.stem}-{n}"))
        if label is not None:
            seen.add(label)
    return Dataset(out, _label_list(seen, labels, path), str(path), dict(counts))


def read_sst2(path) -> Dataset:
    """GLUE SST-2: header ``label<TAB>content`` (or ``sentence``), labels 0/1."""
    path = _check(path)
    head = next(_lines(path), (1, ""))[1].split("\t")
    if len(head) != 2 or head[0].strip().lower() != "label":
        raise DataError(f"{path}:1: expected the header 'label<TAB>sentence', got {head}")
    return read_tsv(path, header=True, labels=["0", "1"])


def read_senteval(path) -> Dataset:
    """SentEval-style copies (CoLA, MR, CR, SUBJ, MPQA, SST2): no header; the label
    column is found (CoLA has ``sentence<TAB>label``, the others ``label<TAB>sentence``)."""
    return read_tsv(path, header=False)


def read_chnsenticorp(path) -> Dataset:
    """ChnSentiCorp: header ``label<TAB>text_a`` (``text_a`` alone in test_nolabel)."""
    return read_tsv(path, header=True, labels=["0", "1"])


def read_mrpc(path) -> Dataset:
    """MRPC: ``Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String`` with a header."""
    path = _check(path)
    out, counts = [], collections.Counter()
    for n, line in _lines(path):
        fields = line.split("\t")
        if n == 1:
            if fields[0].strip().lower() != "quality" or len(fields) != 5:
                raise DataError(f"{path}:1: expected the MRPC header 'Quality<TAB>#1 ID<TAB>#2 ID<TAB>"
                                f"#1 String<TAB>#2 String', got {fields}")
            continue
        if not line.strip():
            counts["empty_lines"] += 1
            continue
        if len(fields) != 5:
            raise DataError(f"{path}:{n}: expected 5 tab-separated fields, got {len(fields)}")
        if fields[0] not in ("0", "1"):
            raise DataError(f"{path}:{n}: quality {fields[0]!r} is not 0 or 1")
        out.append(TextExample(fields[3].strip(), fields[4].strip(), fields[0], f"{fields[1]}-{fields[2]}"))
    return Dataset(out, ["0", "1"], str(path), dict(counts))


# FewCLUE classification sets: (text key, second text key, label key, label list)
FEWCLUE = {
    "tnews": ("sentence", None, "label_desc", None),
    "iflytek": ("sentence", None, "label_des", None),
    "ocnli": ("sentence1", "sentence2", "label", ["contradiction", "entailment", "neutral"]),
    "bustm": ("sentence1", "sentence2", "label", ["0", "1"]),
    "eprstmt": ("sentence", None, "label", ["Negative", "Positive"]),
}


def read_fewclue(path, task: str) -> Dataset:
    """A FewCLUE JSON-lines file of ``task`` (tnews, iflytek, ocnli, bustm, eprstmt;
    use ``read_chid`` for chid). Unlabeled files (``test.json``) give ``label=None``;
    OCNLI's ``-`` (no annotator majority) is skipped and counted. TNEWS takes its
    15 label names from ``label_index2en2zh.json`` beside the file when present."""
    if task not in FEWCLUE:
        raise DataError(f"FewCLUE task {task!r} is not one of {', '.join(FEWCLUE)} (chid: read_chid)")
    path = _check(path)
    text_key, pair_key, label_key, labels = FEWCLUE[task]
    names = path.parent / "label_index2en2zh.json"
    if task == "tnews" and names.is_file():
        entries = [obj for _, obj in _jsonl(names)]
        labels = [e["label_desc"] for e in sorted(entries, key=lambda e: int(e["label"]))]
    out, seen, counts = [], set(), collections.Counter()
    for n, obj in _jsonl(path):
        label = obj.get(label_key)
        if label is not None:
            label = str(label)
            if label == "-":
                counts["no_majority_label"] += 1
                continue
            seen.add(label)
        text = str(_field(obj, text_key, path, n))
        pair = str(_field(obj, pair_key, path, n)) if pair_key else None
        out.append(TextExample(text, pair, label, str(obj.get("id", n))))
    return Dataset(out, _label_list(seen, labels, path), str(path), dict(counts))


# ---------------------------------------------------------------- tagging

_BIO = re.compile(r"O|[BI]-.+")


def read_conll(path, scheme: str = "bio", sep: str | None = None) -> Dataset:
    """CoNLL columns: the word first, the tag last; blank (or whitespace-only) lines
    end sentences; ``-DOCSTART-`` lines are skipped. ``scheme='iob1'`` converts the
    tags to BIO (counted as ``tags_converted``). ``sep=None`` splits on whitespace."""
    if scheme not in ("bio", "iob1"):
        raise DataError(f"tag scheme {scheme!r} is not 'bio' or 'iob1'")
    path = _check(path)
    out, counts, kinds = [], collections.Counter(), set()
    words: list[str] = []
    tags: list[str] = []
    start = 1

    def flush():
        nonlocal words, tags
        if words:
            fixed = iob1_to_bio(tags) if scheme == "iob1" else tags
            counts["tags_converted"] += sum(a != b for a, b in zip(fixed, tags))
            out.append(TagExample(words, fixed, f"{path.stem}-{start}"))
        words, tags = [], []

    for n, line in _lines(path):
        if not line.strip():
            flush()
            start = n + 1
            continue
        fields = line.split(sep) if sep else line.split()
        if fields[0] == "-DOCSTART-":
            counts["docstart_lines"] += 1
            continue
        if len(fields) < 2 or not fields[0].strip():
            raise DataError(f"{path}:{n}: expected a word and a tag, got {line!r}")
        tag = fields[-1].strip()
        if not _BIO.fullmatch(tag):
            raise DataError(f"{path}:{n}: tag {tag!r} is not O, B-TYPE or I-TYPE")
        words.append(fields[0].strip())
        tags.append(tag)
        if tag != "O":
            kinds.add(tag[2:])
    flush()
    counts["sentences"] = len(out)
    return Dataset(out, tag_list(kinds), str(path), dict(counts))


def tag_list(kinds) -> list[str]:
    """``O`` then ``B-X, I-X`` for every entity type in sorted order."""
    return ["O"] + [f"{p}-{k}" for k in sorted(kinds) for p in "BI"]


def read_conll2003(path) -> Dataset:
    """CoNLL-2003 NER (word POS chunk NER, IOB1), converted to BIO."""
    return read_conll(path, scheme="iob1")


def read_wnut17(path) -> Dataset:
    """WNUT-17 emerging entities: ``word<TAB>tag``, BIO; a ``<TAB>``-only line ends a sentence."""
    return read_conll(path, scheme="bio", sep="\t")


def read_msra(path) -> Dataset:
    """MSRA NER: header ``text_a<TAB>label``, characters and BIO tags separated by
    spaces; the tag order comes from ``label2id.json`` beside the file when present."""
    path = _check(path)
    out, counts, kinds = [], collections.Counter(), set()
    labeled = None
    for n, line in _lines(path):
        fields = line.split("\t")
        if n == 1:
            if fields[0] != "text_a" or fields[1:] not in ([], ["label"]):
                raise DataError(f"{path}:1: expected the header 'text_a<TAB>label' or 'text_a', got {fields}")
            labeled = len(fields) == 2
            continue
        if not line.strip():
            counts["empty_lines"] += 1
            continue
        if len(fields) != (2 if labeled else 1):
            raise DataError(f"{path}:{n}: expected {2 if labeled else 1} tab-separated fields, got {len(fields)}")
        chars = fields[0].split(" ")
        tags = fields[1].split(" ") if labeled else None
        if tags is not None:
            if len(tags) != len(chars):
                raise DataError(f"{path}:{n}: {len(chars)} characters but {len(tags)} tags")
            bad = next((t for t in tags if not _BIO.fullmatch(t)), None)
            if bad is not None:
                raise DataError(f"{path}:{n}: tag {bad!r} is not O, B-TYPE or I-TYPE")
            kinds.update(t[2:] for t in tags if t != "O")
        out.append(TagExample(chars, tags, f"{path.stem}-{n}"))
    labels = tag_list(kinds)
    table = path.parent / "label2id.json"
    if table.is_file():
        order = _json(table)
        labels = _label_list([t for k in kinds for t in (f"B-{k}", f"I-{k}")], sorted(order, key=order.get), path)
    return Dataset(out, labels, str(path), dict(counts))


# ---------------------------------------------------------------- extractive QA


def read_squad(path) -> Dataset:
    """SQuAD-format JSON (CMRC 2018). An answer whose ``answer_start`` does not point at
    its text is moved to the nearest occurrence (``answer_starts_fixed``) or, when the
    text is nowhere in the context, kept with ``start=-1`` (``answers_not_in_context``;
    such answers still count as references when scoring)."""
    path = _check(path)
    data = _json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path}: expected a SQuAD-format object with a 'data' list")
    out, counts = [], collections.Counter()
    for article in data["data"]:
        for para in article.get("paragraphs", []):
            context = para.get("context")
            if not isinstance(context, str):
                raise DataError(f"{path}: paragraph {para.get('id', '?')!r} has no context string")
            for qa in para.get("qas", []):
                qid = qa.get("id")
                if qid is None or "question" not in qa:
                    raise DataError(f"{path}: a question of paragraph {para.get('id', '?')!r} has no id or text")
                answers = []
                for ans in qa.get("answers", []):
                    text, start = ans.get("text"), ans.get("answer_start", -1)
                    if not isinstance(text, str) or not isinstance(start, int):
                        raise DataError(f"{path}: question {qid!r}: an answer needs 'text' and 'answer_start'")
                    if context[start:start + len(text)] != text or start < 0:
                        found = [m.start() for m in re.finditer(re.escape(text), context)] if text else []
                        if found:
                            start = min(found, key=lambda s, s0=start: abs(s - s0))
                            counts["answer_starts_fixed"] += 1
                        else:
                            start = -1
                            counts["answers_not_in_context"] += 1
                    answers.append(Answer(text, start))
                impossible = bool(qa.get("is_impossible", False))
                if not impossible and not any(a.start >= 0 for a in answers):
                    counts["questions_without_located_answer"] += 1
                out.append(QAExample(str(qid), qa["question"], context, answers, impossible))
    return Dataset(out, [], str(path), dict(counts))


read_cmrc2018 = read_squad


# ---------------------------------------------------------------- multiple choice


def read_c3(path) -> Dataset:
    """C3: a JSON list of ``[paragraph lines, questions, id]``; each question has
    ``choice`` (2-4 options) and ``answer`` (absent in the test split)."""
    path = _check(path)
    data = _json(path)
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


def read_chid(path) -> Dataset:
    """FewCLUE CHID: ``content`` with one ``#idiom#`` blank, 7 ``candidates``, ``answer``."""
    path = _check(path)
    out = []
    for n, obj in _jsonl(path):
        content = str(_field(obj, "content", path, n))
        options = _field(obj, "candidates", path, n)
        if "#idiom#" not in content:
            raise DataError(f"{path}:{n}: content has no '#idiom#' blank")
        label = obj.get("answer")
        if label is not None and not (isinstance(label, int) and 0 <= label < len(options)):
            raise DataError(f"{path}:{n}: answer {label!r} is not an index into {len(options)} candidates")
        out.append(ChoiceExample(content, list(options), "", label, "#idiom#", str(obj.get("id", n))))
    return Dataset(out, [], str(path), {})


# ---------------------------------------------------------------- translation


def read_tatoeba(path, source: str = "en") -> Dataset:
    """Tatoeba ``en<TAB>zh<TAB>attribution``; ``source`` is 'en' (en->zh) or 'zh'."""
    if source not in ("en", "zh"):
        raise DataError(f"tatoeba source language {source!r} is not 'en' or 'zh'")
    path = _check(path)
    out, counts = [], collections.Counter()
    for n, line in _lines(path):
        if not line.strip():
            counts["empty_lines"] += 1
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{path}:{n}: expected 'english<TAB>chinese<TAB>attribution'")
        en, zh = fields[0].strip(), fields[1].strip()
        out.append(PairExample(en, zh, str(n)) if source == "en" else PairExample(zh, en, str(n)))
    return Dataset(out, [], str(path), dict(counts))


def read_multi30k(folder, split: str = "train", source: str = "en", target: str = "de") -> Dataset:
    """Multi30k task 1: ``{split}.{lang}.gz`` line-aligned files (split: train, val,
    test_2016_flickr, ...). Pairs with an empty side are skipped and counted."""
    folder = Path(folder)
    src_path, tgt_path = _check(folder / f"{split}.{source}.gz"), _check(folder / f"{split}.{target}.gz")
    src, tgt = list(_lines(src_path)), list(_lines(tgt_path))
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; they must align")
    out, counts = [], collections.Counter()
    for (n, a), (_, b) in zip(src, tgt):
        if not a.strip() or not b.strip():
            counts["empty_pairs"] += 1
            continue
        out.append(PairExample(a.strip(), b.strip(), str(n)))
    return Dataset(out, [], f"{src_path} + {tgt_path}", dict(counts))
