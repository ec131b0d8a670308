"""A user's labeled files as task examples: one reader path for every task, used by
``sesame finetune --train FILE``, ``sesame eval --data FILE``, the inference verbs'
``--input FILE`` and the named data sets (each a preset of a path, a format and
columns over these same readers; see ``sesame.finetune.DATASETS``).

    spec = FileSpec(task="classification", columns=Columns(text="review", label="stars"))
    data = read_file("reviews.csv", spec)                # a Dataset of TextExample
    splits = load_splits({"train": "train.csv", "test": "test.csv"}, spec)   # dev carved from train

Formats (``tables.py``): CSV, TSV, JSON Lines, JSON (a list of records; SQuAD layout for
QA), CoNLL column files (tagging), Parquet (with pyarrow); a pandas DataFrame or a
``datasets.Dataset`` is taken where a path is. Columns are names, or 0-based indices
(``--no-header`` files). Unset columns are looked up among common names (``DEFAULTS``).

Decisions are counted in ``Dataset.counts`` and never silent: empty texts skipped,
tags normalised to BIO (from IOB1 or IOBES), QA training questions whose answer is not
in the context skipped, invalid UTF-8 replaced. Errors name the file and line: a missing
column (listing the columns there are), a row with too few fields, a blank label, a
token/tag count mismatch, a dev/test label never seen in train."""
from __future__ import annotations

import collections
import dataclasses
import json
import re
from pathlib import Path

from sesame.config.base import Section, choice
from sesame.errors import ConfigError, DataError
from sesame.tasks import tables
from sesame.tasks.examples import Answer, ChoiceExample, Dataset, PairExample, QAExample, TagExample, TextExample
from sesame.tasks.metrics import iob1_to_bio

# user-facing task names -> registered tasks
TASKS = {"classification": "classification", "pair-classification": "classification", "tagging": "tagging",
         "qa": "qa", "multiple-choice": "multiple_choice", "seq2seq": "seq2seq"}
TASKS.update({v: v for v in list(TASKS.values())})

# column role -> names looked for when the role is not given
DEFAULTS = {
    "text": ("text", "sentence", "content", "text_a", "sentence1", "review", "document", "premise", "question1"),
    "text_pair": ("text_pair", "text_b", "sentence2", "hypothesis", "question2"),
    "label": ("label", "labels", "class", "category", "answer"),
    "tokens": ("tokens", "words", "text_a"),
    "tags": ("tags", "ner_tags", "labels", "label"),
    "question": ("question", "query"),
    "context": ("context", "passage", "paragraph", "article", "content"),
    "answers": ("answers", "answer"),
    "options": ("options", "choices", "candidates", "endings"),
    "source": ("source", "src", "input", "text"),
    "target": ("target", "tgt", "output", "summary"),
    "id": ("id", "idx", "guid", "qid"),
}
# positional defaults for files without a header: label first (label<TAB>text), as GLUE/UER lay them out
POSITIONAL = {"classification": {"label": 0, "text": 1, "text_pair": 2}, "seq2seq": {"source": 0, "target": 1},
              "tagging": {"tokens": 0, "tags": 1}}


@dataclasses.dataclass
class Columns(Section):
    """Which column holds what (a name, or a 0-based index). Unset: looked up (``DEFAULTS``)."""

    text: str | int | None = None
    text_pair: str | int | None = None
    label: str | int | None = None
    tokens: str | int | None = None
    tags: str | int | None = None
    question: str | int | None = None
    context: str | int | None = None
    answers: str | int | None = None
    options: str | int | list | None = None  # a column holding a list, or several columns (one option each)
    source: str | int | None = None
    target: str | int | None = None
    id: str | int | None = None


@dataclasses.dataclass
class FileSpec(Section):
    """How to read a labeled file for ``task``."""

    task: str = "classification"
    format: str | None = None  # csv | tsv | jsonl | json | conll | parquet; None: from the extension
    columns: Columns = dataclasses.field(default_factory=Columns)
    delimiter: str | None = None
    header: bool = True
    strict: bool = False  # refuse invalid UTF-8 instead of replacing it
    labels: list[str] | None = None  # a fixed label list (presets); default: collected from train
    skip_labels: list[str] = dataclasses.field(default_factory=list)  # label values skipped (counted)
    blank: str | None = None  # multiple choice: each option fills this placeholder of the context (CHID)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; tasks: {', '.join(k for k in TASKS if '_' not in k)}")
        if self.format is not None:
            choice("format", self.format, tables.FORMATS)

    @property
    def registered(self) -> str:
        return TASKS[self.task]


def as_spec(spec: FileSpec | dict | None = None, **kw) -> FileSpec:
    if isinstance(spec, FileSpec):
        return spec.replace(**kw) if kw else spec
    data = {**(spec or {}), **{k: v for k, v in kw.items() if v is not None}}
    if isinstance(data.get("columns"), dict):
        data["columns"] = {k: v for k, v in data["columns"].items() if v is not None}
    return FileSpec.from_dict(data, "data")


# ---------------------------------------------------------------- columns


LABEL_ROLES = ("label", "tags", "answers", "target")


class _Row:
    """Column lookup for one table: roles to indices, with errors that list the columns. In a
    dev/test file (``train=False``) a label column that is not there means: no labels."""

    def __init__(self, table: tables.Table, spec: FileSpec, train: bool = True):
        self.table, self.spec, self.train = table, spec, train
        self.positional = POSITIONAL.get(spec.registered, {}) if not table.header else {}

    def index(self, role: str, required: bool = True) -> int | None:
        given = getattr(self.spec.columns, role)
        cols = self.table.columns
        if role in LABEL_ROLES and not self.train and given is not None:
            if isinstance(given, int) or (isinstance(given, str) and given.lstrip("-").isdigit()):
                if not -len(cols) <= int(given) < len(cols):
                    return None
            elif given not in cols and str(given).lower() not in [c.lower() for c in cols]:
                return None
        if given is None:
            if role in self.positional and self.positional[role] < len(cols):
                return self.positional[role]
            lower = {c.lower(): i for i, c in enumerate(cols)}
            for name in DEFAULTS.get(role, ()):
                if name in lower:
                    return lower[name]
            if required:
                flag = f"--{role.replace('_', '-')}-column"
                raise DataError(f"{self.table.path}: no {role} column (looked for {', '.join(DEFAULTS[role])}); "
                                f"the columns are {', '.join(map(str, cols))}; name it with {flag}")
            return None
        return self.lookup(given, role)

    def lookup(self, given, role: str) -> int:
        cols = self.table.columns
        if isinstance(given, int) or (isinstance(given, str) and given.lstrip("-").isdigit()
                                      and given not in cols):
            k = int(given)
            if not -len(cols) <= k < len(cols):
                raise DataError(f"{self.table.path}: {role} column {k} is out of range; the file has "
                                f"{len(cols)} columns ({', '.join(map(str, cols))})")
            return k % len(cols)
        if given in cols:
            return cols.index(given)
        lower = [c.lower() for c in cols]
        if str(given).lower() in lower:
            return lower.index(str(given).lower())
        raise DataError(f"{self.table.path}: no column {given!r} for the {role}; the columns are "
                        f"{', '.join(map(str, cols))}")


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _label(value, where: str, column: str) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _text(value)
    if not text:
        raise DataError(f"{where}: blank label in column {column!r}; fill it in or remove the row")
    return text


def _listed(value, where: str, what: str) -> list[str]:
    """A list cell: a JSON list, a JSON list written as text, or whitespace-separated text."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if hasattr(value, "tolist"):
        return [str(v) for v in value.tolist()]
    text = _text(value)
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    if not text:
        raise DataError(f"{where}: empty {what}")
    return text.split()


# ---------------------------------------------------------------- tags

_TAG = re.compile(r"O|[BIES]-.+")


def normalise_tags(tags: list[str], where: str) -> tuple[list[str], int, str]:
    """BIO tags from BIO, IOB1 or IOBES, the number changed, and the scheme seen."""
    bad = next((t for t in tags if not _TAG.fullmatch(t)), None)
    if bad is not None:
        raise DataError(f"{where}: tag {bad!r} is not O or PREFIX-TYPE with prefix B, I, E or S")
    scheme = "iobes" if any(t[0] in "ES" for t in tags if t != "O") else "bio"
    bio = [f"B-{t[2:]}" if t[0] == "S" else f"I-{t[2:]}" if t[0] == "E" else t for t in tags]
    fixed = iob1_to_bio(bio)
    if scheme == "bio" and fixed != bio:
        scheme = "iob1"
    return fixed, sum(a != b for a, b in zip(fixed, tags)), scheme


def tag_list(kinds) -> list[str]:
    """``O`` then ``B-X, I-X`` for every entity type in sorted order."""
    return ["O"] + [f"{p}-{k}" for k in sorted(kinds) for p in "BI"]


# ---------------------------------------------------------------- examples per task


def _classification(table, spec, counts, pair: bool, train: bool = True):
    row = _Row(table, spec, train)
    t = row.index("text")
    p = row.index("text_pair", required=pair or spec.task == "pair-classification")
    if p == t:
        p = None
    lab = row.index("label", required=False) if spec.columns.label is None else row.index("label")
    ident = row.index("id", required=False)
    out, where = [], []
    for loc, values in table.rows:
        text = _text(values[t])
        label = None if lab is None else values[lab]
        if lab is not None and _text(label) in spec.skip_labels:
            counts["skipped_labels"] += 1
            continue
        if not text:
            counts["empty_texts"] += 1
            continue
        label = None if lab is None else _label(label, loc, table.columns[lab])
        pair_text = _text(values[p]) if p is not None else None
        ex_id = _text(values[ident]) if ident is not None else loc
        out.append(TextExample(text, pair_text, label, ex_id))
        where.append(loc)
    return out, where, lab is not None


def _tagging_table(table, spec, counts, train: bool = True):
    row = _Row(table, spec, train)
    w = row.index("tokens")
    g = row.index("tags", required=spec.columns.tags is not None)
    if g == w:
        g = None
    out, where = [], []
    for loc, values in table.rows:
        words = _listed(values[w], loc, "token list")
        tags = _listed(values[g], loc, "tag list") if g is not None else None
        out.append(_tag_example(words, tags, loc, counts))
        where.append(loc)
    return out, where, g is not None


def _tag_example(words, tags, loc, counts) -> TagExample:
    if tags is None:
        return TagExample(words, None, loc)
    if len(tags) != len(words):
        raise DataError(f"{loc}: {len(words)} tokens but {len(tags)} tags")
    fixed, changed, scheme = normalise_tags(tags, loc)
    counts["tags_converted"] += changed
    counts[f"scheme_{scheme}"] += 1
    return TagExample(words, fixed, loc)


def _conll(path, spec, counts):
    cols = spec.columns
    tok = 0 if cols.tokens is None else int(cols.tokens)
    tag = -1 if cols.tags is None else int(cols.tags)
    sentences, c = tables.read_columns(path, tok, tag, spec.delimiter, spec.strict)
    counts.update(c)
    return [_tag_example(w, t, loc, counts) for loc, w, t in sentences], [s[0] for s in sentences], True


def _answers(value, context: str, loc: str) -> list[Answer]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith(("[", "{")):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
    if isinstance(value, str):
        return [Answer(value, context.find(value))]
    if isinstance(value, dict) and isinstance(value.get("text"), (list, tuple)):  # {"text": [..], "answer_start": [..]}
        starts = list(value.get("answer_start") or [-1] * len(value["text"]))
        return [Answer(str(t), int(s)) for t, s in zip(value["text"], starts)]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, (list, tuple)):
        out = []
        for a in value:
            if isinstance(a, str):
                out.append(Answer(a, context.find(a)))
            elif isinstance(a, dict) and "text" in a:
                out.append(Answer(str(a["text"]), int(a.get("answer_start", context.find(str(a["text"]))))))
            else:
                raise DataError(f"{loc}: an answer must be a text or {{text, answer_start}}, got {a!r}")
        return out
    raise DataError(f"{loc}: cannot read answers {value!r}")


def locate(answers: list[Answer], context: str, counts) -> list[Answer]:
    """Answers whose ``start`` does not point at their text move to the nearest occurrence
    (``answer_starts_fixed``) or get ``start=-1`` (``answers_not_in_context``)."""
    out = []
    for a in answers:
        start = a.start
        if start < 0 or context[start:start + len(a.text)] != a.text:
            found = [m.start() for m in re.finditer(re.escape(a.text), context)] if a.text else []
            if found:
                start = min(found, key=lambda s: abs(s - a.start))
                counts["answer_starts_fixed"] += 1
            else:
                start = -1
                counts["answers_not_in_context"] += 1
        out.append(Answer(a.text, start))
    return out


def _squad(data, path, counts):
    """SQuAD v1/v2 layout: data -> paragraphs -> qas (``is_impossible`` / ``plausible_answers`` of v2)."""
    out, where = [], []
    name = Path(path).name
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context")
            if not isinstance(context, str):
                raise DataError(f"{path}: article {a}, paragraph {p} has no context string")
            for qa in para.get("qas", []):
                qid = qa.get("id")
                if qid is None or "question" not in qa:
                    raise DataError(f"{path}: article {a}, paragraph {p}: a question has no id or text")
                for ans in qa.get("answers", []):
                    if not isinstance(ans.get("text"), str) or not isinstance(ans.get("answer_start", -1), int):
                        raise DataError(f"{path}: question {qid!r}: an answer needs 'text' and 'answer_start'")
                answers = locate([Answer(x["text"], x.get("answer_start", -1)) for x in qa.get("answers", [])],
                                 context, counts)
                impossible = bool(qa.get("is_impossible", False))
                out.append(QAExample(str(qid), qa["question"], context, answers, impossible))
                where.append(f"{name}: question {qid}")
    return out, where, True


def _qa_table(table, spec, counts, train: bool = True):
    row = _Row(table, spec, train)
    q, c = row.index("question"), row.index("context")
    a = row.index("answers", required=spec.columns.answers is not None)
    ident = row.index("id", required=False)
    out, where = [], []
    for loc, values in table.rows:
        context = _text(values[c])
        answers = locate(_answers(values[a], context, loc), context, counts) if a is not None else []
        qid = _text(values[ident]) if ident is not None else loc
        out.append(QAExample(qid, _text(values[q]), context, answers, a is not None and not answers))
        where.append(loc)
    return out, where, a is not None


def _choice(table, spec, counts, train: bool = True):
    row = _Row(table, spec, train)
    ctx = row.index("context")
    q = row.index("question", required=False) if spec.columns.question is None else row.index("question")
    if isinstance(spec.columns.options, list):
        opt = [row.lookup(x, "options") for x in spec.columns.options]
    else:
        opt = row.index("options")
    lab = row.index("label", required=spec.columns.label is not None)
    ident = row.index("id", required=False)
    out, where = [], []
    for loc, values in table.rows:
        options = [_text(values[i]) for i in opt] if isinstance(opt, list) else _listed(values[opt], loc, "options")
        label = None
        if lab is not None and values[lab] is not None and _text(values[lab]) != "":
            raw = values[lab]
            text = _text(raw)
            if text in options and not (isinstance(raw, int) or text.isdigit()):
                label = options.index(text)
            elif text.lstrip("-").isdigit() and 0 <= int(text) < len(options):
                label = int(text)
            else:
                raise DataError(f"{loc}: answer {raw!r} is neither one of the {len(options)} options nor an "
                                "index into them")
        elif lab is not None:
            raise DataError(f"{loc}: blank label in column {table.columns[lab]!r}; fill it in or remove the row")
        context = _text(values[ctx])
        if spec.blank and spec.blank not in context:
            raise DataError(f"{loc}: the context has no {spec.blank!r} blank")
        ex_id = _text(values[ident]) if ident is not None else loc
        out.append(ChoiceExample(context, options, _text(values[q]) if q is not None else "", label, spec.blank,
                                 ex_id))
        where.append(loc)
    return out, where, lab is not None


def _seq2seq(table, spec, counts, train: bool = True):
    row = _Row(table, spec, train)
    s = row.index("source")
    t = row.index("target", required=spec.columns.target is not None)
    ident = row.index("id", required=False)
    out, where = [], []
    for loc, values in table.rows:
        src, tgt = _text(values[s]), _text(values[t]) if t is not None else None
        if not src or (t is not None and not tgt):
            counts["empty_pairs"] += 1
            continue
        out.append(PairExample(src, tgt, _text(values[ident]) if ident is not None else loc))
        where.append(loc)
    return out, where, t is not None


# ---------------------------------------------------------------- reading


def _source_name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def read_file(source, spec: FileSpec | dict | None = None, *, train: bool = True) -> Dataset:
    """The examples of one file (or DataFrame / ``datasets.Dataset``) under ``spec``.
    ``Dataset.labels`` is what this file's labels are (sorted; empty for QA, multiple
    choice and seq2seq); ``Dataset.labeled`` says whether it had a label column.
    ``train``: QA questions whose answers are not in their context are skipped (counted)."""
    spec = as_spec(spec)
    task, name = spec.registered, _source_name(source)
    counts: collections.Counter = collections.Counter()
    if isinstance(source, (str, Path)):
        path = Path(source)
        fmt = spec.format or tables.detect_format(path, task)
        if fmt == "conll":
            if task != "tagging":
                raise DataError(f"{path}: a CoNLL column file is read for tagging, not {spec.task}")
            examples, where, labeled = _conll(path, spec, counts)
            return _finish(examples, where, labeled, spec, name, counts, train)
        if fmt == "json" and task == "qa":
            data, c = tables.load_json(path, spec.strict)
            counts.update(c)
            if isinstance(data, dict) and isinstance(data.get("data"), list) and \
                    all(isinstance(a, dict) and "paragraphs" in a for a in data["data"]):
                examples, where, labeled = _squad(data, path, counts)
                return _finish(examples, where, labeled, spec, name, counts, train)
            table = tables.records_table(data, path, counts)
        else:
            table = tables.read_table(path, fmt, spec.delimiter, spec.header, spec.strict)
    else:
        table = tables.from_frame(source, name)
    counts.update(table.counts)
    readers = {"classification": lambda: _classification(table, spec, counts, spec.task == "pair-classification",
                                                         train),
               "tagging": lambda: _tagging_table(table, spec, counts, train),
               "qa": lambda: _qa_table(table, spec, counts, train),
               "multiple_choice": lambda: _choice(table, spec, counts, train),
               "seq2seq": lambda: _seq2seq(table, spec, counts, train)}
    examples, where, labeled = readers[task]()
    return _finish(examples, where, labeled, spec, name, counts, train)


def _finish(examples, where, labeled, spec, name, counts, train) -> Dataset:
    task = spec.registered
    if task == "qa" and train and labeled:
        keep = [i for i, ex in enumerate(examples) if ex.impossible or any(a.start >= 0 for a in ex.answers)]
        if len(keep) < len(examples):
            counts["questions_skipped_answer_not_in_context"] += len(examples) - len(keep)
            examples, where = [examples[i] for i in keep], [where[i] for i in keep]
    if not examples:
        raise DataError(f"{name}: no usable examples ({dict(counts) or 'nothing to read'})")
    labels: list[str] = []
    if labeled and task == "classification":
        labels = sort_labels({ex.label for ex in examples})
    elif labeled and task == "tagging":
        labels = tag_list({t[2:] for ex in examples for t in ex.tags if t != "O"})
    return Dataset(examples, labels, name, {k: v for k, v in counts.items() if v}, where, labeled)


def sort_labels(seen) -> list[str]:
    """Integers in numeric order, names alphabetically."""
    seen = list(seen)
    if all(x.lstrip("-").isdigit() for x in seen):
        return sorted(seen, key=int)
    return sorted(seen)


def check_labels(data: Dataset, labels: list[str], task: str, split: str) -> None:
    """A dev/test label (or entity type) never seen in train is an error naming it and its line."""
    if not getattr(data, "labeled", True):
        return
    known = set(labels)
    where = data.where if len(data.where) == len(data.examples) else [ex.id for ex in data.examples]
    for ex, loc in zip(data.examples, where):
        seen = [ex.label] if task == "classification" else ex.tags if task == "tagging" else []
        for x in seen or []:
            if x is not None and x not in known:
                what = "label" if task == "classification" else "tag"
                raise DataError(f"{loc}: {split} {what} {x!r} never occurs in train (train has "
                                f"{', '.join(labels)}); add examples of it to train or drop the row")


def label_counts(data: Dataset, task: str) -> dict[str, int]:
    if task == "classification":
        return dict(collections.Counter(ex.label for ex in data.examples if ex.label is not None).most_common())
    if task == "tagging":
        return dict(collections.Counter(t[2:] for ex in data.examples for t in ex.tags or [] if t[0] == "B")
                    .most_common())
    return {}


def balanced_weights(counts: dict[str, int], labels: list[str]) -> list[float]:
    """``n / (k * n_c)`` per class (scikit-learn's 'balanced')."""
    n, k = sum(counts.values()), len(labels)
    return [n / (k * counts[c]) if counts.get(c) else 0.0 for c in labels]
