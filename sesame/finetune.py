"""Fine-tuning end to end: a labeled data set -> its task -> a pre-trained model with the
task's head and a transfer strategy -> the trainer -> evaluation reports -> a fine-tuned
model directory. What `sesame finetune` and `sesame eval --dataset` run.

    summary = finetune("runs/bert/model", "sst2", "runs/ft-sst2", {"steps": 500},
                       strategy={"kind": "adapters", "adapter_size": 64})
    sesame.pipeline("text-classification", "runs/ft-sst2/model")("a fine film")

A run directory holds ``config.toml``, ``checkpoints/``, ``metrics.jsonl``, ``eval/``
(one JSON/Markdown report per evaluated split, with predictions), ``summary.json`` and
``model/`` (weights, ``tokenizer.json``, ``labels.json`` and ``finetune.json``, which
records the data set, task, labels and strategy).

Data sets are named (``DATASETS``); their files live under the labeled data folder
(default ``../shared/data/labeled``, beside the checkout). Where the shared copy lacks
a split, the registry says what stands in for it (``DatasetSpec.note``): MRPC's dev is a
fixed 10% of its train file; MSRA NER trains on 90% of its dev file and tunes on the
other 10% (its test file stays the test); CMRC 2018 trains on the trial set and is
evaluated on dev; C3 trains on 90% of its dev documents and tunes on the other 10% (its
test file has no answers); Tatoeba is split 90/5/5. Carved splits are drawn with a
fixed seed, by document where examples share one (C3)."""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sesame import transfer
from sesame.config.base import closest
from sesame.config.registry import get
from sesame.config.train import TrainConfig
from sesame.errors import ConfigError, DataError
from sesame.models import save_model
from sesame.pipelines import LABELS, load_any
from sesame.tasks import readers
from sesame.tasks.examples import Dataset
from sesame.tasks.readers import tag_list
from sesame.train import ArraySource, Trainer

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labeled"
TOKENIZER, RECORD = "tokenizer.json", "finetune.json"
TASK_HEADS = ("classify", "tag", "span", "choice")  # heads fine-tuned for one data set (lm heads carry over)


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
    reader: Callable[[Path], Dataset]
    splits: dict[str, Part]  # split name -> file relative to the labeled data folder
    options: dict = dataclasses.field(default_factory=dict)  # default task options
    language: str = "en"
    source: str | None = None  # translation: source and target languages
    target: str | None = None
    note: str = ""  # how the splits were chosen where the shared copy lacks one


def _spec(name, task, reader, splits, options=None, language="en", note="", **kw) -> DatasetSpec:
    parts = {k: v if isinstance(v, Part) else Part(v) for k, v in splits.items()}
    return DatasetSpec(name, task, reader, parts, dict(options or {}), language, note=note, **kw)


def _multi30k(path: Path, source: str = "en", target: str = "de") -> Dataset:
    return readers.read_multi30k(path.parent, path.name, source, target)


def _registry() -> dict[str, DatasetSpec]:
    fc = "zh/fewclue"
    few = {"train": "train_few_all.json", "dev": "dev_few_all.json", "test": "test_public.json"}
    out = [
        _spec("sst2", "classification", readers.read_sst2, {s: f"en/sst2/{s}.tsv" for s in ("train", "dev", "test")},
              {"max_length": 66}),
        *[_spec(n.lower(), "classification", readers.read_senteval,
                {s: f"en/senteval/{n}/{s}.tsv" for s in ("train", "dev")}, {"max_length": 64},
                note="SentEval copy: train and dev only")
          for n in ("CoLA", "MR", "CR", "SUBJ", "MPQA")],
        _spec("mrpc", "classification", readers.read_mrpc,
              {"train": Part("en/mrpc/msr_paraphrase_train.txt", 0.0, 0.9),
               "dev": Part("en/mrpc/msr_paraphrase_train.txt", 0.9, 1.0), "test": "en/mrpc/msr_paraphrase_test.txt"},
              {"max_length": 128}, note="no dev file: dev is a fixed 10% of the train file, train the other 90%"),
        _spec("chnsenticorp", "classification", readers.read_chnsenticorp,
              {s: f"zh/chnsenticorp/{s}.tsv" for s in ("train", "dev", "test")}, {"max_length": 256}, "zh"),
        *[_spec(t, "classification", functools.partial(readers.read_fewclue, task=t),
                {s: f"{fc}/{t}/{f}" for s, f in few.items()}, {"max_length": 128}, "zh",
                note="FewCLUE few-shot: train_few_all / dev_few_all / test_public")
          for t in ("tnews", "ocnli", "bustm", "iflytek", "eprstmt")],
        _spec("chid", "multiple_choice", readers.read_chid, {s: f"{fc}/chid/{f}" for s, f in few.items()},
              {"max_length": 128}, "zh", note="FewCLUE few-shot: train_few_all / dev_few_all / test_public"),
        _spec("conll2003", "tagging", readers.read_conll2003,
              {s: f"en/conll2003/{s}.txt" for s in ("train", "dev", "test")}, {"max_length": 128}),
        _spec("wnut17", "tagging", readers.read_wnut17,
              {"train": "en/wnut17/wnut17train.conll", "dev": "en/wnut17/emerging.dev.conll",
               "test": "en/wnut17/emerging.test.annotated"}, {"max_length": 128}),
        _spec("msra", "tagging", readers.read_msra,
              {"train": Part("zh/msra-ner/dev.tsv", 0.0, 0.9), "dev": Part("zh/msra-ner/dev.tsv", 0.9, 1.0),
               "test": "zh/msra-ner/test.tsv"}, {"max_length": 256}, "zh",
              note="no train split here: trains on 90% of dev.tsv, tunes on the other 10%; test.tsv is the test"),
        _spec("cmrc2018", "qa", readers.read_squad,
              {"train": "zh/cmrc2018/cmrc2018_trial.json", "dev": "zh/cmrc2018/cmrc2018_dev.json"},
              {"max_length": 384, "metric": "cmrc2018"}, "zh",
              note="no train split here: trains on the trial set, evaluated on dev; no test"),
        _spec("c3", "multiple_choice", readers.read_c3,
              {"train": Part("zh/c3/dev.json", 0.0, 0.9, "context"),
               "dev": Part("zh/c3/dev.json", 0.9, 1.0, "context")},
              {"max_length": 256}, "zh",
              note="only dev has answers: trains on 90% of the dev documents, evaluated on the other 10%; no test"),
        _spec("tatoeba", "seq2seq", readers.read_tatoeba,
              {s: Part("../translation/tatoeba-cmn-eng/cmn.txt", lo, hi)
               for s, lo, hi in (("train", 0.0, 0.9), ("dev", 0.9, 0.95), ("test", 0.95, 1.0))},
              {"max_length": 64, "max_target_length": 64, "target_language": "zh"}, "en", source="en", target="zh",
              note="one file: split 90/5/5 with a fixed seed"),
        _spec("multi30k", "seq2seq", _multi30k,
              {"train": "../translation/multi30k/train", "dev": "../translation/multi30k/val",
               "test": "../translation/multi30k/test_2016_flickr"},
              {"max_length": 64, "max_target_length": 64, "target_language": "de"}, "en", source="en", target="de",
              note="task 1, en->de; test = test_2016_flickr"),
    ]
    return {s.name: s for s in out}


DATASETS = _registry()


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}{closest(name, DATASETS)}; data sets: {', '.join(DATASETS)}")
    return DATASETS[name]


def carve(data: Dataset, part: Part, seed: int = 0) -> Dataset:
    """The examples of ``data`` in ``part``'s fraction of a fixed shuffle of its groups."""
    keys = [getattr(ex, part.by) if part.by else i for i, ex in enumerate(data.examples)]
    groups = list(dict.fromkeys(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    chosen = {groups[i] for i in order[int(round(part.lo * len(groups))):int(round(part.hi * len(groups)))]}
    examples = [ex for ex, k in zip(data.examples, keys) if k in chosen]
    counts = {**data.counts, "carved_from": len(data.examples)}
    return Dataset(examples, data.labels, f"{data.path}[{part.lo:g}:{part.hi:g}]", counts)


def read_split(dataset: str, split: str, data_dir: str | Path | None = None) -> Dataset:
    """One split of a registered data set (see ``DatasetSpec.note`` for carved splits)."""
    spec = dataset_spec(dataset)
    if split not in spec.splits:
        raise ConfigError(f"data set {dataset!r} has no split {split!r}{closest(split, spec.splits)}; it has "
                          f"{', '.join(spec.splits)}{' (' + spec.note + ')' if spec.note else ''}")
    part = spec.splits[split]
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    if not root.is_dir():
        raise DataError(f"the labeled data folder {root} does not exist; pass --data-dir (see shared/data/README.md)")
    data = spec.reader(root / part.path)
    return carve(data, part) if part.carved else data


def merged_labels(task: str, sets: list[Dataset]) -> list[str]:
    """One label list for all splits: the first set's order, extra labels appended (tags rebuilt)."""
    sets = [s for s in sets if s is not None and s.labels]
    if not sets:
        return []
    if task == "tagging":
        kinds = {t[2:] for s in sets for t in s.labels if t != "O"}
        first = sets[0].labels
        return first if set(first) == set(tag_list(kinds)) else tag_list(kinds)
    out = list(sets[0].labels)
    for s in sets[1:]:
        out += [x for x in s.labels if x not in out]
    return out


def subsample(examples: list, limit: int | None, seed: int) -> list:
    """At most ``limit`` examples, chosen with a fixed seed, in file order."""
    if limit is None or limit >= len(examples):
        return list(examples)
    if limit < 1:
        raise ConfigError(f"max_train / max_eval must be positive, got {limit}")
    keep = np.sort(np.random.default_rng([seed, 17]).permutation(len(examples))[:limit])
    return [examples[i] for i in keep]


# ---------------------------------------------------------------- settings

def default_train(model_config, strategy: transfer.StrategyConfig, n_train: int) -> dict:
    """Fine-tuning defaults: 3 epochs, batch 32, 10% warmup, linear decay; lr 5e-5 for models of
    hidden size >= 512, 1e-4 for >= 256, 5e-4 below, and 1e-3 when only heads or adapters train."""
    batch = min(32, max(n_train, 1))
    steps = max(3 * (n_train // batch), 1)
    hidden = model_config.hidden
    lr = 1e-3 if strategy.kind != "full" else 5e-5 if hidden >= 512 else 1e-4 if hidden >= 256 else 5e-4
    return {"steps": steps, "batch_size": batch, "lr": lr, "warmup": steps // 10, "weight_decay": 0.01,
            "schedule": "linear", "log_every": 10}


def resolve_train(train_config: TrainConfig | dict | None, model_config, strategy, n_train: int) -> TrainConfig:
    """A TrainConfig is used as it is; a dict overrides ``default_train`` (warmup follows
    ``steps`` unless given)."""
    if isinstance(train_config, TrainConfig):
        return train_config
    over = dict(train_config or {})
    base = default_train(model_config, strategy, n_train)
    if "steps" in over and "warmup" not in over:
        base["warmup"] = int(over["steps"]) // 10
    return TrainConfig.from_dict({**base, **over}, "train")


def _check_sizes(n_train: int, cfg: TrainConfig, dataset: str) -> None:
    if n_train < cfg.batch_size:
        raise DataError(f"{dataset}: {n_train} training examples cannot fill one batch of train.batch_size = "
                        f"{cfg.batch_size}; lower the batch size or raise max_train")


def task_options(spec: DatasetSpec, options: dict | None, model_config) -> tuple[dict, list[str]]:
    """The data set's default task options under ``options``; a default length longer than
    the model's learned position table is shortened to it (and said), a requested one refused."""
    out, notes = {**spec.options, **(options or {})}, []
    if model_config.position != "learned":
        return out, notes
    limit = model_config.max_positions
    for key in ("max_length", "max_target_length"):
        if key in out and out[key] > limit:
            if key in (options or {}):
                raise ConfigError(f"task.{key} = {out[key]} is longer than the model's position table "
                                  f"(model.max_positions = {limit})")
            notes.append(f"task.{key} {out[key]} -> {limit} (the model's max_positions)")
            out[key] = limit
    return out, notes


def _source_record(model_dir: Path) -> dict:
    path = Path(model_dir) / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(model, tok, labels: list[str], out: Path, record: dict) -> Path:
    extra = {TOKENIZER: tok.to_json(), LABELS: json.dumps(labels, ensure_ascii=False),
             RECORD: json.dumps(record, indent=2, ensure_ascii=False, default=str)}
    return save_model(model, out, extra=extra)


def _evaluate(task, module, splits: dict[str, Dataset], batch_size: int, report_dir: Path) -> dict:
    out = {}
    for name, data in splits.items():
        result = task.evaluate(module, data.examples, batch_size, report_dir=report_dir, name=name)
        out[name] = {"examples": result["examples"], "metrics": result["metrics"], "files": result.get("files")}
    return out


def _eval_splits(dataset: str, eval_split: str, data_dir, max_eval: int | None, seed: int) -> dict[str, Dataset]:
    spec = dataset_spec(dataset)
    names = [eval_split] + [s for s in ("test",) if s in spec.splits and s != eval_split]
    out = {}
    for name in names:
        data = read_split(dataset, name, data_dir)
        data.examples = subsample(data.examples, max_eval, seed)
        out[name] = data
    return out


# ---------------------------------------------------------------- fine-tuning

def finetune(model_dir: str | Path, dataset: str, run_dir: str | Path, train_config: TrainConfig | dict | None = None,
             options: dict | None = None, strategy: transfer.StrategyConfig | dict | str | None = None,
             max_train: int | None = None, eval_split: str = "dev", progress: bool = True, *,
             data_dir: str | Path | None = None, max_eval: int | None = None, eval_batch_size: int = 32,
             resume: bool = False, say: Callable[[str], None] = print) -> dict:
    """Fine-tune the model in ``model_dir`` (sesame or Hugging Face) on ``dataset``'s train
    split, evaluate on ``eval_split`` (also every ``train.eval_every`` steps, over
    ``train.eval_batches`` batches) and on test when there is one, and save the model to
    ``run_dir/model``. ``options``: task options over the data set's defaults. ``max_train`` /
    ``max_eval``: fixed-seed subsets. Returns the summary (also ``run_dir/summary.json``)."""
    run_dir = Path(run_dir)
    spec = dataset_spec(dataset)
    strategy = transfer.as_strategy(strategy)
    model, tok, old_labels = load_any(model_dir)
    train = read_split(dataset, "train", data_dir)
    seed = train_config.seed if isinstance(train_config, TrainConfig) else int((train_config or {}).get("seed", 0))
    evals = _eval_splits(dataset, eval_split, data_dir, max_eval, seed)
    labels = merged_labels(spec.task, [train, *evals.values()])
    train_examples = subsample(train.examples, max_train, seed)
    cfg = resolve_train(train_config, model.config, strategy, len(train_examples))
    _check_sizes(len(train_examples), cfg, dataset)
    opts, fitted = task_options(spec, options, model.config)
    task = get("task", spec.task)(tok, labels or None, opts)
    notes = [f"{dataset}: {len(train_examples):,} training examples from {train.path}"
             + (f" ({spec.note})" if spec.note else ""), *fitted]
    fresh = task.head in TASK_HEADS and task.head in model.heads
    if fresh and (_source_record(model_dir).get("dataset") != dataset or old_labels != labels):
        del model.heads[task.head]  # a head fine-tuned for another data set starts fresh
        notes.append(f"the source model's `{task.head}` head was trained for another data set: re-initialised")
    torch.manual_seed(cfg.seed)
    model, added = transfer.prepare_model(model, strategy)
    module = task.wrap(model)
    plan = transfer.apply(module, strategy, steps_per_epoch=len(train_examples) // cfg.batch_size)
    notes += added + plan.notes
    source = ArraySource([{"examples": ex} for ex in train_examples], cfg.batch_size, seed=cfg.seed)
    eval_source = None
    dev = evals[eval_split].examples
    if cfg.eval_every and dev:
        size = min(len(dev), cfg.micro_batch_size or cfg.batch_size)
        eval_source = ArraySource([{"examples": ex} for ex in dev], size, seed=cfg.seed, shuffle=False)
    record = {"dataset": dataset, "task": spec.task, "labels": labels, "source_model": str(model_dir),
              "options": task.opts.to_dict(), "strategy": strategy.to_dict()}
    config = {"finetune": {k: v for k, v in record.items() if k != "labels"}, "train": cfg.to_dict(),
              "model": model.config.to_dict()}
    trainer = Trainer(task, model.config, cfg, source, run_dir, eval_source, module, config=config,
                      progress=progress, on_step=plan.on_step)
    try:
        if strategy.gradual_unfreeze and trainer.dist.world > 1:
            raise ConfigError("strategy.gradual_unfreeze changes requires_grad during training, which DDP does "
                              "not allow; fine-tune on one process")
        plan.on_step(trainer.step)
        at_start = transfer.trainable_fraction(trainer.module)
        for note in notes:
            say(note)
        say(f"strategy {strategy.kind}: {at_start['trainable']:,} of {at_start['total']:,} parameters train "
            f"({at_start['fraction']:.2%})")
        fit = trainer.fit(resume=resume)
        summary = {"dataset": dataset, "task": spec.task, "train_examples": len(train_examples),
                   "labels": labels, "notes": notes, "strategy": strategy.to_dict(),
                   "trainable": {**plan.summary(), **at_start}, "train": fit}
        if strategy.gradual_unfreeze:
            summary["trainable"]["at_end"] = transfer.trainable_fraction(trainer.module)["fraction"]
        if trainer.dist.main:
            summary["eval"] = _evaluate(task, trainer.module, evals, eval_batch_size, run_dir / "eval")
            _save(trainer.module.model, tok, labels, run_dir / "model", record)
    finally:
        trainer.close()
    summary["model_dir"] = str(run_dir / "model")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return summary


def two_stage(model_dir: str | Path, first: str, second: str, run_dir: str | Path,
              train_config: TrainConfig | dict | None = None, strategy=None, first_strategy=None,
              first_train_config: TrainConfig | dict | None = None, **kwargs) -> dict:
    """Two-stage fine-tuning: ``first`` (the intermediate task, with ``first_strategy``,
    default full) into ``run_dir/stage1``, then ``second`` from that model into
    ``run_dir/stage2`` with ``strategy``. The intermediate head is replaced when the data
    sets differ; the encoder carries over."""
    run_dir = Path(run_dir)
    one = finetune(model_dir, first, run_dir / "stage1", first_train_config or train_config,
                   strategy=first_strategy, **kwargs)
    two = finetune(one["model_dir"], second, run_dir / "stage2", train_config, strategy=strategy, **kwargs)
    return {"stage1": one, "stage2": two, "model_dir": two["model_dir"]}


def multitask(model_dir: str | Path, datasets: list[str], run_dir: str | Path,
              train_config: TrainConfig | dict | None = None, strategy=None, max_train: int | None = None,
              mix: str = "proportional", progress: bool = True, *, options: dict[str, dict] | None = None,
              data_dir: str | Path | None = None, max_eval: int | None = None, eval_batch_size: int = 32,
              resume: bool = False, say: Callable[[str], None] = print) -> dict:
    """Multi-task fine-tuning: one shared encoder, one head per data set, each optimizer step
    one task's batch (``mix``: proportional or round_robin; see ``transfer.MixedSource``), the
    task's summed loss. Each task is evaluated and saved to ``run_dir/models/<dataset>`` as a
    complete model (the shared encoder with that task's head)."""
    if len(set(datasets)) != len(datasets) or len(datasets) < 2:
        raise ConfigError(f"multi-task fine-tuning needs two or more different data sets, got {datasets}")
    run_dir = Path(run_dir)
    strategy = transfer.as_strategy(strategy)
    base, tok, _ = load_any(model_dir)
    seed = train_config.seed if isinstance(train_config, TrainConfig) else int((train_config or {}).get("seed", 0))
    parts: dict[str, Any] = {}
    notes: list[str] = []
    for name in datasets:
        spec = dataset_spec(name)
        train = read_split(name, "train", data_dir)
        evals = _eval_splits(name, "dev", data_dir, max_eval, seed)
        labels = merged_labels(spec.task, [train, *evals.values()])
        opts, fitted = task_options(spec, (options or {}).get(name), base.config)
        task = get("task", spec.task)(tok, labels or None, opts)
        parts[name] = (spec, task, subsample(train.examples, max_train, seed), evals, labels)
        notes += [f"{name}: {n}" for n in fitted]
    total = sum(len(p[2]) for p in parts.values())
    cfg = resolve_train(train_config, base.config, strategy, min(len(p[2]) for p in parts.values()))
    if not isinstance(train_config, TrainConfig) and "steps" not in (train_config or {}):
        cfg = cfg.replace(steps=max(3 * total // cfg.batch_size, 1), warmup=max(3 * total // cfg.batch_size, 1) // 10)
    torch.manual_seed(cfg.seed)
    base, added = transfer.prepare_model(base, strategy)
    notes += added
    modules, sources = {}, {}
    for i, (name, (spec, task, examples, _, _)) in enumerate(parts.items()):
        _check_sizes(len(examples), cfg, name)
        shell = transfer.share_body(base)
        if task.head in TASK_HEADS and task.head in shell.heads:
            del shell.heads[task.head]
        modules[name] = task.wrap(shell)
        sources[name] = ArraySource([{"examples": ex} for ex in examples], cfg.batch_size, seed=cfg.seed + i)
        notes.append(f"{name}: {len(examples):,} training examples ({spec.task})")
    module = transfer.MultiTaskModule(modules)
    mixed = transfer.MixedSource(sources, mix, cfg.seed)
    plan = transfer.apply(module, strategy, steps_per_epoch=mixed.steps_per_epoch)
    multi = transfer.MultiTask({name: p[1] for name, p in parts.items()})
    config = {"multitask": {"datasets": list(datasets), "mix": mix, "source_model": str(model_dir),
                            "strategy": strategy.to_dict()}, "train": cfg.to_dict(), "model": base.config.to_dict()}
    trainer = Trainer(multi, base.config, cfg, mixed, run_dir, None, module, config=config, progress=progress,
                      on_step=plan.on_step)
    try:
        plan.on_step(trainer.step)
        at_start = transfer.trainable_fraction(trainer.module)
        for note in notes + plan.notes:
            say(note)
        fit = trainer.fit(resume=resume)
        summary = {"datasets": list(datasets), "mix": mix, "notes": notes + plan.notes, "strategy": strategy.to_dict(),
                   "trainable": {**plan.summary(), **at_start}, "train": fit, "tasks": {}}
        if trainer.dist.main:
            for name, (spec, task, examples, evals, labels) in parts.items():
                out = run_dir / "models" / name
                summary["tasks"][name] = {
                    "task": spec.task, "train_examples": len(examples),
                    "eval": _evaluate(task, modules[name], evals, eval_batch_size, run_dir / "eval" / name),
                    "model_dir": str(out)}
                record = {"dataset": name, "task": spec.task, "labels": labels, "source_model": str(model_dir),
                          "options": task.opts.to_dict(), "strategy": strategy.to_dict(),
                          "multitask": list(datasets)}
                _save(modules[name].model, tok, labels, out, record)
    finally:
        trainer.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return summary


# ---------------------------------------------------------------- evaluation

def evaluate_dataset(model_dir: str | Path, dataset: str, split: str = "dev", data_dir: str | Path | None = None,
                     batch_size: int = 32, report_dir: str | Path | None = None, max_examples: int | None = None,
                     options: dict | None = None) -> dict:
    """The task metrics of a fine-tuned model on one split of ``dataset`` (a report is written
    to ``report_dir`` when given), with the task options it was trained with (``finetune.json``)
    under ``options``. The model must already have the task's trained head."""
    spec = dataset_spec(dataset)
    model, tok, labels = load_any(model_dir)
    data = read_split(dataset, split, data_dir)
    data.examples = subsample(data.examples, max_examples, 0)
    task_cls = get("task", spec.task)
    if task_cls.needs_labels:
        if not labels:
            labels = data.labels if model.config.num_labels == len(data.labels) else []
        if not labels:
            raise ConfigError(f"{model_dir} has no {LABELS} and its head does not fit {dataset}'s "
                              f"{len(data.labels)} labels; fine-tune it first (sesame finetune)")
        unknown = sorted({str(x) for x in data.labels} - set(labels))
        if unknown:
            raise ConfigError(f"{dataset} {split} has labels {unknown} the model was not trained on ({labels})")
    record = _source_record(model_dir)
    trained = record.get("options", {}) if record.get("dataset") == dataset else {}
    opts, _ = task_options(spec, {**trained, **(options or {})}, model.config)
    task = task_cls(tok, labels or None, opts)
    head = model.heads[task.head] if task.head in model.heads else None
    module = task.wrap(model)
    if head is None or module.model.heads[task.head] is not head:
        raise ConfigError(f"{model_dir} has no trained `{task.head}` head for the {spec.task} task of {dataset}; "
                          f"fine-tune it first: sesame finetune {model_dir} --dataset {dataset}")
    result = task.evaluate(module, data.examples, batch_size, report_dir=report_dir, name=f"{dataset}-{split}")
    return {"dataset": dataset, "split": split, "data": data.path, **result}
