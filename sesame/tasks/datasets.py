"""The named labeled data sets: each is a preset over the same file readers a user's own
files go through (``files.py``): its split paths, format, columns and split notes.

The data root is ``data_dir`` (``--data-dir``), else the ``SESAME_DATA`` environment
variable, else ``../shared/data`` relative to the current directory when it exists; its
``labeled/`` folder holds the sets (a root without one is taken as the labeled folder
itself). Nothing is derived from where the package is installed.

Where the shared copy lacks a split, the preset says what stands in for it
(``DatasetSpec.note``): MRPC's dev is a fixed 10% of its train file; MSRA NER trains on
90% of its dev file and tunes on the other 10% (its test file stays the test); CMRC 2018
trains on the trial set and is evaluated on dev; C3 trains on 90% of its dev documents and
tunes on the other 10% (its test file has no answers); Tatoeba is split 90/5/5. Carved
splits are drawn with a fixed seed, by document where examples share one (C3)."""
from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from sesame.config.base import closest
from sesame.errors import ConfigError, DataError
from sesame.tasks import readers
from sesame.tasks.examples import Dataset
from sesame.tasks.files import as_spec, check_labels, read_file

ENV = "SESAME_DATA"


@dataclasses.dataclass(frozen=True)
class Part:
    """A split file, or the fraction ``[lo, hi)`` of its examples (grouped by attribute ``by``)
    after a fixed shuffle."""

    path: str
    lo: float = 0.0
    hi: float = 1.0
    by: str | None = None

    @property
    def carved(self) -> bool:
        return (self.lo, self.hi) != (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str  # a registered task: classification, tagging, qa, multiple_choice, seq2seq
    splits: dict[str, Part]  # split name -> file relative to the labeled data folder
    data: dict = dataclasses.field(default_factory=dict)  # the FileSpec: format, columns, header, labels, ...
    options: dict = dataclasses.field(default_factory=dict)  # default task options
    language: str = "en"
    source: str | None = None  # translation: source and target languages
    target: str | None = None
    note: str = ""  # how the splits were chosen where the shared copy lacks one
    layout: Callable[[Path], Dataset] | None = None  # a layout that is not a table (C3's nested lists, Multi30k)

    def read(self, path: Path, train: bool = True) -> Dataset:
        if self.layout is not None:
            return self.layout(path)
        return read_file(path, as_spec({"task": self.task, **self.data}), train=train)


def _spec(name, task, splits, data=None, options=None, language="en", note="", **kw) -> DatasetSpec:
    parts = {k: v if isinstance(v, Part) else Part(v) for k, v in splits.items()}
    return DatasetSpec(name, task, parts, dict(data or {}), dict(options or {}), language, note=note, **kw)


def _multi30k(path: Path, source: str = "en", target: str = "de") -> Dataset:
    return readers.read_multi30k(path.parent, path.name, source, target)


def _registry() -> dict[str, DatasetSpec]:
    fc = "zh/fewclue"
    few = {"train": "train_few_all.json", "dev": "dev_few_all.json", "test": "test_public.json"}
    fewclue = {"tnews": {"text": "sentence", "label": "label_desc"},
               "iflytek": {"text": "sentence", "label": "label_des"},
               "ocnli": {"text": "sentence1", "text_pair": "sentence2", "label": "label"},
               "bustm": {"text": "sentence1", "text_pair": "sentence2", "label": "label"},
               "eprstmt": {"text": "sentence", "label": "label"}}
    tsv = {"format": "tsv"}
    out = [
        _spec("sst2", "classification", {s: f"en/sst2/{s}.tsv" for s in ("train", "dev", "test")},
              {**tsv, "columns": {"label": "label"}}, {"max_length": 66}),
        *[_spec(n.lower(), "classification", {s: f"en/senteval/{n}/{s}.tsv" for s in ("train", "dev")},
                {**tsv, "header": False,
                 "columns": {"text": 0, "label": 1} if n == "CoLA" else {"label": 0, "text": 1}},
                {"max_length": 64}, note="SentEval copy: train and dev only")
          for n in ("CoLA", "MR", "CR", "SUBJ", "MPQA")],
        _spec("mrpc", "classification",
              {"train": Part("en/mrpc/msr_paraphrase_train.txt", 0.0, 0.9),
               "dev": Part("en/mrpc/msr_paraphrase_train.txt", 0.9, 1.0), "test": "en/mrpc/msr_paraphrase_test.txt"},
              {**tsv, "columns": {"label": "Quality", "text": "#1 String", "text_pair": "#2 String"}},
              {"max_length": 128}, note="no dev file: dev is a fixed 10% of the train file, train the other 90%"),
        _spec("chnsenticorp", "classification", {s: f"zh/chnsenticorp/{s}.tsv" for s in ("train", "dev", "test")},
              {**tsv, "columns": {"label": "label", "text": "text_a"}}, {"max_length": 256}, "zh"),
        *[_spec(t, "classification", {s: f"{fc}/{t}/{f}" for s, f in few.items()},
                {"format": "jsonl", "columns": cols, "skip_labels": ["-"] if t == "ocnli" else []},
                {"max_length": 128}, "zh", note="FewCLUE few-shot: train_few_all / dev_few_all / test_public")
          for t, cols in fewclue.items()],
        _spec("chid", "multiple_choice", {s: f"{fc}/chid/{f}" for s, f in few.items()},
              {"format": "jsonl", "blank": "#idiom#",
               "columns": {"context": "content", "options": "candidates", "label": "answer"}},
              {"max_length": 128}, "zh", note="FewCLUE few-shot: train_few_all / dev_few_all / test_public"),
        _spec("conll2003", "tagging", {s: f"en/conll2003/{s}.txt" for s in ("train", "dev", "test")},
              {"format": "conll", "columns": {"tokens": 0, "tags": -1}}, {"max_length": 128},
              note="IOB1 tags read as BIO"),
        _spec("wnut17", "tagging",
              {"train": "en/wnut17/wnut17train.conll", "dev": "en/wnut17/emerging.dev.conll",
               "test": "en/wnut17/emerging.test.annotated"},
              {"format": "conll", "delimiter": "\t", "columns": {"tokens": 0, "tags": -1}}, {"max_length": 128}),
        _spec("msra", "tagging",
              {"train": Part("zh/msra-ner/dev.tsv", 0.0, 0.9), "dev": Part("zh/msra-ner/dev.tsv", 0.9, 1.0),
               "test": "zh/msra-ner/test.tsv"}, {**tsv, "columns": {"tokens": "text_a", "tags": "label"}},
              {"max_length": 256}, "zh",
              note="no train split here: trains on 90% of dev.tsv, tunes on the other 10%; test.tsv is the test"),
        _spec("cmrc2018", "qa", {"train": "zh/cmrc2018/cmrc2018_trial.json", "dev": "zh/cmrc2018/cmrc2018_dev.json"},
              {"format": "json"}, {"max_length": 384, "metric": "cmrc2018"}, "zh",
              note="no train split here: trains on the trial set, evaluated on dev; no test"),
        _spec("c3", "multiple_choice",
              {"train": Part("zh/c3/dev.json", 0.0, 0.9, "context"),
               "dev": Part("zh/c3/dev.json", 0.9, 1.0, "context")},
              options={"max_length": 256}, language="zh", layout=readers.read_c3,
              note="only dev has answers: trains on 90% of the dev documents, evaluated on the other 10%; no test"),
        _spec("tatoeba", "seq2seq",
              {s: Part("../translation/tatoeba-cmn-eng/cmn.txt", lo, hi)
               for s, lo, hi in (("train", 0.0, 0.9), ("dev", 0.9, 0.95), ("test", 0.95, 1.0))},
              {**tsv, "header": False, "columns": {"source": 0, "target": 1}},
              {"max_length": 64, "max_target_length": 64, "target_language": "zh"}, "en", source="en", target="zh",
              note="one file: split 90/5/5 with a fixed seed"),
        _spec("multi30k", "seq2seq",
              {"train": "../translation/multi30k/train", "dev": "../translation/multi30k/val",
               "test": "../translation/multi30k/test_2016_flickr"},
              options={"max_length": 64, "max_target_length": 64, "target_language": "de"}, source="en", target="de",
              layout=_multi30k, note="task 1, en->de; test = test_2016_flickr"),
    ]
    return {s.name: s for s in out}


DATASETS = _registry()


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        match = difflib.get_close_matches(name, list(DATASETS), n=1, cutoff=0.75)
        hint = f" (did you mean `{match[0]}`?)" if match else ""
        if not hint:
            hint = ("; for your own files use --train FILE [--dev FILE] --task TASK (sesame finetune), "
                    "--data FILE (sesame eval)")
        raise ConfigError(f"unknown data set {name!r}{hint}; named data sets: {', '.join(DATASETS)}")
    return DATASETS[name]


def data_root(data_dir: str | Path | None = None) -> Path:
    """The labeled-data folder: ``data_dir``, else ``$SESAME_DATA``, else ``./../shared/data``."""
    if data_dir is not None:
        root, why = Path(data_dir), "--data-dir"
    elif os.environ.get(ENV):
        root, why = Path(os.environ[ENV]), f"${ENV}"
    else:
        root, why = Path.cwd() / ".." / "shared" / "data", "../shared/data (from the current directory)"
        if not root.is_dir():
            raise DataError(f"no data root for the named data sets: give --data-dir DIR, set {ENV}=DIR, or run "
                            f"where ../shared/data exists (looked for {root.resolve()}); or fine-tune on your "
                            "own files with --train FILE")
    if not root.is_dir():
        raise DataError(f"the data root {root} (from {why}) is not a folder; give --data-dir DIR or set {ENV}=DIR")
    return root / "labeled" if (root / "labeled").is_dir() else root


def carve(data: Dataset, part: Part, seed: int = 0) -> Dataset:
    """The examples of ``data`` in ``part``'s fraction of a fixed shuffle of its groups."""
    keys = [getattr(ex, part.by) if part.by else i for i, ex in enumerate(data.examples)]
    groups = list(dict.fromkeys(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    chosen = {groups[i] for i in order[int(round(part.lo * len(groups))):int(round(part.hi * len(groups)))]}
    keep = [i for i, k in enumerate(keys) if k in chosen]
    where = [data.where[i] for i in keep] if data.where else []
    counts = {**data.counts, "carved_from": len(data.examples)}
    return Dataset([data.examples[i] for i in keep], data.labels, f"{data.path}[{part.lo:g}:{part.hi:g}]", counts,
                   where, data.labeled)


def read_split(dataset: str, split: str, data_dir: str | Path | None = None) -> Dataset:
    """One split of a named data set (see ``DatasetSpec.note`` for carved splits)."""
    spec = dataset_spec(dataset)
    if split not in spec.splits:
        raise ConfigError(f"data set {dataset!r} has no split {split!r}{closest(split, spec.splits)}; it has "
                          f"{', '.join(spec.splits)}{' (' + spec.note + ')' if spec.note else ''}")
    part = spec.splits[split]
    data = spec.read(data_root(data_dir) / part.path, train=split == "train")
    return carve(data, part) if part.carved else data


# ---------------------------------------------------------------- a run's splits


@dataclasses.dataclass
class Splits:
    """What a fine-tuning run reads: its name, task, splits (train first), the label list
    (from train), the task option defaults, notes to print and what to record."""

    name: str
    task: str
    splits: dict[str, Dataset]
    labels: list[str]
    options: dict
    notes: list[str]
    record: dict


def _is_dict_of_splits(obj) -> bool:
    return isinstance(obj, dict)  # a datasets.DatasetDict is a dict of splits


def file_splits(train, dev=None, test=None, spec=None, dev_fraction: float = 0.1, seed: int = 0) -> Splits:
    """Splits from a user's files (paths, DataFrames, ``datasets.Dataset``s; ``train`` may be
    a ``DatasetDict`` with train / validation / test). Without ``dev``, a ``dev_fraction`` of
    train is held out with a fixed ``seed`` (said in the notes)."""
    spec = as_spec(spec)
    if _is_dict_of_splits(train):
        parts = dict(train)
        if "train" not in parts:
            raise DataError(f"a DatasetDict needs a 'train' split; it has {', '.join(parts)}")
        dev = dev if dev is not None else parts.get("validation", parts.get("dev"))
        test = test if test is not None else parts.get("test")
        train = parts["train"]
    task = spec.registered
    data = read_file(train, spec, train=True)
    if not data.labeled and task in ("classification", "tagging", "multiple_choice", "seq2seq", "qa"):
        raise DataError(f"{data.path}: the training file has no label column; name it with the column options "
                        "(--label-column, --tags-column, --target-column, --answers-column)")
    notes = [f"train: {len(data):,} examples from {data.path}" + _counted(data)]
    splits = {"train": data}
    if dev is None:
        if not 0.0 < dev_fraction < 1.0:
            raise ConfigError(f"no dev file and dev_fraction = {dev_fraction}: give --dev FILE or a fraction in (0, 1)")
        by = "context" if task in ("qa", "multiple_choice") else None
        whole = data
        splits["train"] = carve(whole, Part(whole.path, 0.0, 1.0 - dev_fraction, by), seed)
        splits["dev"] = carve(whole, Part(whole.path, 1.0 - dev_fraction, 1.0, by), seed)
        notes.append(f"no dev file: {len(splits['dev']):,} examples ({dev_fraction:.0%} of train, seed {seed}"
                     f"{', by context' if by else ''}) held out as dev; train keeps {len(splits['train']):,}")
    else:
        splits["dev"] = read_file(dev, spec, train=False)
        notes.append(f"dev: {len(splits['dev']):,} examples from {splits['dev'].path}" + _counted(splits["dev"]))
    if test is not None:
        splits["test"] = read_file(test, spec, train=False)
        t = splits["test"]
        notes.append(f"test: {len(t):,} examples from {t.path}" + ("" if t.labeled else
                                                                     " (no labels: predictions only)") + _counted(t))
    labels = list(spec.labels) if spec.labels else splits["train"].labels
    for name, part in splits.items():
        check_labels(part, labels, task, name)
    record = {"files": {k: str(Path(v).resolve()) if isinstance(v, (str, Path)) else f"<{type(v).__name__}>"
                        for k, v in (("train", train), ("dev", dev), ("test", test)) if v is not None},
              "data": spec.to_dict(), "dev_fraction": dev_fraction if dev is None else None}
    name = Path(str(train)).stem if isinstance(train, (str, Path)) else type(train).__name__
    return Splits(name, task, splits, labels, {}, notes, record)


def named_splits(dataset: str, eval_split: str = "dev", data_dir=None) -> Splits:
    """The train split, ``eval_split`` and test (when there is one) of a named data set."""
    spec = dataset_spec(dataset)
    names = ["train", eval_split] + [s for s in ("test",) if s in spec.splits and s != eval_split]
    splits = {name: read_split(dataset, name, data_dir) for name in dict.fromkeys(names)}
    labels = list(spec.data.get("labels") or splits["train"].labels)
    for name, part in splits.items():
        check_labels(part, labels, spec.task, name)
    train = splits["train"]
    notes = [f"{dataset}: {len(train):,} training examples from {train.path}" + (f" ({spec.note})" if spec.note
                                                                                 else "") + _counted(train)]
    return Splits(dataset, spec.task, splits, labels, dict(spec.options), notes, {"dataset": dataset})


def _counted(data: Dataset) -> str:
    keep = {k: v for k, v in data.counts.items() if k != "carved_from"}
    return f"; counted: {', '.join(f'{k} {v}' for k, v in keep.items())}" if keep else ""
