"""Fine-tuning end to end: labeled data (a user's files or a named set) -> its task -> a
pre-trained model (or a random init of a preset) with the task's head and a transfer
strategy -> the trainer -> evaluation reports -> a fine-tuned model directory. What
`sesame finetune` and `sesame eval --data / --dataset` run.

    sesame.finetune("runs/bert/model", train="reviews.csv", dev="dev.csv", task="classification",
                    columns={"text": "review", "label": "stars"}, run_dir="runs/reviews")
    finetune("runs/bert/model", "sst2", "runs/ft-sst2", {"steps": 500}, strategy="adapters")
    sesame.pipeline("text-classification", "runs/reviews/model")("a fine film")

Files are read by ``sesame.tasks.files`` (CSV, TSV, JSONL, JSON/SQuAD, CoNLL, Parquet, or a
DataFrame / ``datasets.Dataset``); named sets are presets over the same readers
(``sesame.tasks.datasets``). A run directory holds ``config.toml``, ``checkpoints/``,
``metrics.jsonl``, ``eval/`` (one JSON/Markdown report per evaluated split, with
predictions; a split without labels gets predictions only), ``summary.json`` and ``model/``
(weights, ``tokenizer.json``, ``labels.json`` and ``finetune.json``, which records the data
set or files, task, labels, options and strategy)."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sesame import transfer
from sesame.config.registry import get
from sesame.config.train import TrainConfig
from sesame.errors import ConfigError, DataError
from sesame.models import build_model, save_model
from sesame.pipelines import LABELS, load_any
from sesame.tasks.base import unk_rate
from sesame.tasks.datasets import (DATASETS, DatasetSpec, Part, Splits, carve, data_root, dataset_spec,  # noqa: F401
                                   file_splits, named_splits, read_split)
from sesame.tasks.examples import Dataset
from sesame.tasks.files import as_spec, balanced_weights, check_labels, label_counts, read_file
from sesame.train import ArraySource, Trainer

TOKENIZER, RECORD = "tokenizer.json", "finetune.json"
TASK_HEADS = ("classify", "tag", "span", "choice")  # heads fine-tuned for one data set (lm heads carry over)
UNK_WARN = 0.05  # warn when more than this fraction of the tokens are [UNK]


def merged_labels(task: str, sets: list[Dataset]) -> list[str]:
    """The label list of the first (train) set; every other set's labels must be in it."""
    sets = [x for x in sets if x is not None]
    if not sets or not sets[0].labels:
        return []
    for x in sets[1:]:
        check_labels(x, sets[0].labels, task, "eval")
    return list(sets[0].labels)


def _eval_splits(dataset: str, eval_split: str, data_dir, max_eval: int | None, seed: int) -> dict[str, Dataset]:
    """``eval_split`` and test (when there is one) of a named set, each subsampled to ``max_eval``."""
    spec = dataset_spec(dataset)
    out = {}
    for name in [eval_split] + [x for x in ("test",) if x in spec.splits and x != eval_split]:
        data = read_split(dataset, name, data_dir)
        data.examples = subsample(data.examples, max_eval, seed)
        out[name] = data
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


def task_options(defaults: dict, options: dict | None, model_config, task: str | None = None
                 ) -> tuple[dict, list[str]]:
    """The data set's default task options (then the task's own) under ``options``; a default
    length longer than the model's learned position table is shortened to it (and said), a
    requested one refused."""
    if isinstance(defaults, DatasetSpec):  # a named set: its options and task
        defaults, task = defaults.options, task or defaults.task
    base = {}
    if task is not None:
        own = get("task", task).Options()
        base = {k: getattr(own, k) for k in ("max_length", "max_target_length") if hasattr(own, k)}
    out, notes = {**base, **defaults, **(options or {})}, []
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


def _toml_safe(value):
    """``value`` without the ``None``s TOML cannot hold."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(v) for v in value if v is not None]
    return value


def _save(model, tok, labels: list[str], out: Path, record: dict) -> Path:
    extra = {TOKENIZER: tok.to_json(), LABELS: json.dumps(labels, ensure_ascii=False),
             RECORD: json.dumps(record, indent=2, ensure_ascii=False, default=str)}
    return save_model(model, out, extra=extra)


def texts_of(examples) -> list[str]:
    """The input text of each example, whatever its task (for the [UNK] rate)."""
    out = []
    for ex in examples:
        if hasattr(ex, "words"):
            out.append(" ".join(ex.words))
        elif hasattr(ex, "question"):
            out.append(f"{ex.question} {ex.context}")
        else:
            out.append(str(getattr(ex, "text", None) or getattr(ex, "source", None) or getattr(ex, "context", "")))
    return out


def check_unk(tok, examples, where: str, threshold: float, say: Callable[[str], None]) -> float:
    """Warn when more than ``threshold`` of the tokens of ``examples`` are the unknown token."""
    rate = unk_rate(tok, texts_of(examples))
    if threshold is not None and rate > threshold:
        say(f"warning: {rate:.1%} of the tokens of {where} are {tok.id_to_token(tok.unk_id)} (threshold "
            f"{threshold:.1%}): the tokenizer does not cover this text; use a model whose vocabulary does")
    return rate


def count_long(tok, examples, task) -> str | None:
    """A note on how many of ``examples`` are longer than the task's ``max_length``, and what happens."""
    limit = task.opts.max_length - 2
    texts = texts_of(examples)
    n = sum(len(tok.encode(t).ids) > limit for t in texts)
    if not n:
        return None
    how = "read in windows (doc_stride)" if task.name == "qa" else f"truncated ({task.opts.truncation})"
    return f"{n:,} of {len(texts):,} training inputs{' checked' if len(texts) == 2000 else ''} are longer than " \
           f"task.max_length = {task.opts.max_length} tokens: {how}"


def predictions(task, module, examples, batch_size: int = 32) -> list[dict]:
    """One JSON-able row per example with the prediction as a name (label, tags, answer, option, text)."""
    name = task.name
    if name == "classification":
        probs = task.predict(module, examples, batch_size).softmax(-1)
        best = probs.max(-1)
        return [{"id": ex.id, "label": task.labels[i], "score": round(p, 6)}
                for ex, p, i in zip(examples, best.values.tolist(), best.indices.tolist())]
    if name == "tagging":
        tags, _ = task.predict(module, examples, batch_size)
        return [{"id": ex.id, "words": ex.words, "tags": t} for ex, t in zip(examples, tags)]
    if name == "qa":
        answers = task.predict(module, examples, batch_size)
        return [{"id": ex.id, "answer": answers[ex.id]} for ex in examples]
    if name == "multiple_choice":
        picks = task.predict(module, examples, batch_size)
        return [{"id": ex.id, "label": k, "option": ex.options[k]} for ex, k in zip(examples, picks)]
    outs = task.predict(module, examples, batch_size)
    return [{"id": ex.id, "prediction": o} for ex, o in zip(examples, outs)]


def _evaluate(task, module, splits: dict[str, Dataset], batch_size: int, report_dir: Path) -> dict:
    out = {}
    for name, data in splits.items():
        if not data.labeled:
            rows = predictions(task, module, data.examples, batch_size)
            report_dir.mkdir(parents=True, exist_ok=True)
            path = report_dir / f"{name}-predictions.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            out[name] = {"examples": len(rows), "metrics": None, "files": {"predictions": str(path)}}
            continue
        result = task.evaluate(module, data.examples, batch_size, report_dir=report_dir, name=name)
        out[name] = {"examples": result["examples"], "metrics": result["metrics"], "files": result.get("files")}
    return out


def random_model(preset: str, tokenizer: str | Path, seed: int = 0):
    """A randomly initialised model of ``preset`` sized to ``tokenizer`` (a file or folder), drawn
    with ``seed``."""
    from sesame.config.run import load_config
    from sesame.tokenize import load_tokenizer

    if not preset or not tokenizer:
        raise ConfigError("init = 'random' needs a preset (--preset NAME) and a tokenizer (--tokenizer FILE)")
    tok = load_tokenizer(tokenizer)
    cfg = load_config(preset).model.replace(vocab_size=tok.vocab_size)
    torch.manual_seed(seed)
    return build_model(cfg), tok, []


def _data(dataset, train, dev, test, task, columns, data, dev_fraction, eval_split, data_dir, seed) -> Splits:
    if dataset is not None and train is not None:
        raise ConfigError("give a named data set or --train FILE, not both")
    if dataset is not None:
        named = dataset_spec(dataset).task
        if task is not None and get("task", as_spec(task=task).registered) is not get("task", named):
            raise ConfigError(f"data set {dataset!r} is a {dataset_spec(dataset).task} set, not {task}")
        return named_splits(dataset, eval_split, data_dir)
    if train is None:
        raise ConfigError("nothing to fine-tune on: give train=FILE (--train) or a named data set (--dataset)")
    if task is None:
        raise ConfigError("fine-tuning on files needs the task: classification, pair-classification, tagging, qa, "
                          "multiple-choice or seq2seq (--task)")
    spec = as_spec(data, task=task, columns=columns)
    return file_splits(train, dev, test, spec, dev_fraction, seed)


# ---------------------------------------------------------------- fine-tuning

def finetune(model_dir: str | Path | None, dataset: str | None = None, run_dir: str | Path | None = None,
             train_config: TrainConfig | dict | None = None, options: dict | None = None,
             strategy: transfer.StrategyConfig | dict | str | None = None, max_train: int | None = None,
             eval_split: str = "dev", progress: bool = True, *, train: Any = None, dev: Any = None, test: Any = None,
             task: str | None = None, columns: dict | None = None, data: dict | None = None,
             dev_fraction: float = 0.1, class_weights: str | None = None, init: str = "pretrained",
             preset: str | None = None, tokenizer: str | Path | None = None, unk_threshold: float | None = UNK_WARN,
             data_dir: str | Path | None = None, max_eval: int | None = None, eval_batch_size: int = 32,
             resume: bool = False, say: Callable[[str], None] = print) -> dict:
    """Fine-tune the model in ``model_dir`` (sesame or Hugging Face; or ``init="random"``:
    a random ``preset`` over ``tokenizer``) on ``train`` (a file, DataFrame, ``datasets.Dataset``
    or ``DatasetDict``; ``task``, ``columns`` and ``data`` = {format, delimiter, header, strict}
    say how to read it) or on the named ``dataset``'s train split. Evaluates on dev (a
    ``dev_fraction`` of train when there is no ``dev``; also every ``train.eval_every`` steps)
    and on test when there is one, and saves the model to ``run_dir/model``. ``options``: task
    options; ``class_weights="balanced"`` weighs the classification loss by inverse class
    frequency; ``max_train`` / ``max_eval``: fixed-seed subsets. Returns the summary (also
    ``run_dir/summary.json``)."""
    strategy = transfer.as_strategy(strategy)
    seed = train_config.seed if isinstance(train_config, TrainConfig) else int((train_config or {}).get("seed", 0))
    src = _data(dataset, train, dev, test, task, columns, data, dev_fraction, eval_split, data_dir, seed)
    eval_key = eval_split if dataset is not None else "dev"
    run_dir = Path(run_dir if run_dir is not None else Path("runs") / f"ft-{src.name}")
    if init == "random":
        model, tok, old_labels = random_model(preset, tokenizer, seed)
        source_model = f"random init of preset {preset} (tokenizer {tokenizer})"
    elif init == "pretrained":
        if model_dir is None:
            raise ConfigError("no model directory: give one, or init='random' with a preset and a tokenizer")
        model, tok, old_labels = load_any(model_dir)
        source_model = str(model_dir)
    else:
        raise ConfigError(f"init must be 'pretrained' or 'random', got {init!r}")
    splits = dict(src.splits)
    train_data = splits.pop("train")
    evals = {k: v for k, v in splits.items() if k == eval_key or k == "test"}
    for v in evals.values():
        v.examples = subsample(v.examples, max_eval, seed)
    labels = src.labels
    train_examples = subsample(train_data.examples, max_train, seed)
    cfg = resolve_train(train_config, model.config, strategy, len(train_examples))
    _check_sizes(len(train_examples), cfg, src.name)
    opts, fitted = task_options(src.options, options, model.config, src.task)
    notes = [*src.notes, *fitted]
    counts = label_counts(Dataset(train_examples, labels, ""), src.task)
    if counts:
        notes.append(f"{'label' if src.task == 'classification' else 'entity'} counts (train): "
                     + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if class_weights is not None:
        if class_weights != "balanced" or src.task != "classification":
            raise ConfigError(f"class_weights = {class_weights!r}: only 'balanced', for classification")
        opts["class_weights"] = [round(w, 6) for w in balanced_weights(counts, labels)]
        notes.append("class weights (balanced): " + ", ".join(f"{k} {w:.3f}" for k, w in zip(labels,
                                                                                         opts["class_weights"])))
    task_obj = get("task", src.task)(tok, labels or None, opts)
    if tok.unk_id is not None:
        check_unk(tok, train_examples[:2000], f"{src.name} train", unk_threshold, say)
    long = count_long(tok, train_examples[:2000], task_obj)
    if long:
        notes.append(long)
    fresh = task_obj.head in TASK_HEADS and task_obj.head in model.heads
    if fresh and (_source_record(model_dir).get("dataset") != src.name or old_labels != labels) \
            if model_dir is not None else False:
        del model.heads[task_obj.head]  # a head fine-tuned for another data set starts fresh
        notes.append(f"the source model's `{task_obj.head}` head was trained for another data set: re-initialised")
    torch.manual_seed(cfg.seed)
    model, added = transfer.prepare_model(model, strategy)
    module = task_obj.wrap(model)
    plan = transfer.apply(module, strategy, steps_per_epoch=len(train_examples) // cfg.batch_size)
    notes += added + plan.notes
    source = ArraySource([{"examples": ex} for ex in train_examples], cfg.batch_size, seed=cfg.seed)
    eval_source = None
    dev_examples = evals[eval_key].examples if eval_key in evals and evals[eval_key].labeled else []
    if cfg.eval_every and dev_examples:
        size = min(len(dev_examples), cfg.micro_batch_size or cfg.batch_size)
        eval_source = ArraySource([{"examples": ex} for ex in dev_examples], size, seed=cfg.seed, shuffle=False)
    record = {"dataset": src.name, **src.record, "task": src.task, "labels": labels, "source_model": source_model,
              "options": task_obj.opts.to_dict(), "strategy": strategy.to_dict()}
    config = {"finetune": _toml_safe({k: v for k, v in record.items() if k != "labels"}), "train": cfg.to_dict(),
              "model": model.config.to_dict()}
    trainer = Trainer(task_obj, model.config, cfg, source, run_dir, eval_source, module, config=config,
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
        summary = {"dataset": src.name, **src.record, "task": src.task, "train_examples": len(train_examples),
                   "labels": labels, "label_counts": counts, "notes": notes, "strategy": strategy.to_dict(),
                   "trainable": {**plan.summary(), **at_start}, "train": fit}
        if strategy.gradual_unfreeze:
            summary["trainable"]["at_end"] = transfer.trainable_fraction(trainer.module)["fraction"]
        if trainer.dist.main:
            summary["eval"] = _evaluate(task_obj, trainer.module, evals, eval_batch_size, run_dir / "eval")
            _save(trainer.module.model, tok, labels, run_dir / "model", record)
    finally:
        trainer.close()
    summary["model_dir"] = str(run_dir / "model")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return summary


def two_stage(model_dir: str | Path, first: str | dict, second: str | dict, run_dir: str | Path,
              train_config: TrainConfig | dict | None = None, strategy=None, first_strategy=None,
              first_train_config: TrainConfig | dict | None = None, **kwargs) -> dict:
    """Two-stage fine-tuning: ``first`` (the intermediate task, with ``first_strategy``,
    default full) into ``run_dir/stage1``, then ``second`` from that model into
    ``run_dir/stage2`` with ``strategy``. Each stage is a named data set or a dict of
    ``finetune``'s file arguments (``train``, ``dev``, ``test``, ``task``, ``columns``,
    ``data``, ``dev_fraction``), read by the same file route. The intermediate head is
    replaced when the data sets differ; the encoder carries over."""
    run_dir = Path(run_dir)
    one = finetune(model_dir, run_dir=run_dir / "stage1", train_config=first_train_config or train_config,
                   strategy=first_strategy, **_stage(first), **kwargs)
    two = finetune(one["model_dir"], run_dir=run_dir / "stage2", train_config=train_config, strategy=strategy,
                   **_stage(second), **kwargs)
    return {"stage1": one, "stage2": two, "model_dir": two["model_dir"]}


def _stage(stage: str | dict) -> dict:
    """``finetune`` keyword arguments for one stage: a named set or file arguments."""
    if isinstance(stage, str):
        return {"dataset": stage}
    if not isinstance(stage, dict) or "train" not in stage:
        raise ConfigError(f"a stage is a named data set or a dict with train=FILE (and task=...), got {stage!r}")
    return {k: v for k, v in stage.items() if k != "name"}  # name: a multi-task head's name only


def _stage_splits(stage: str | dict, data_dir, seed: int) -> Splits:
    """The splits of one multi-task data set: a named set, or files read by the file route."""
    if isinstance(stage, str):
        return named_splits(stage, "dev", data_dir)
    st = _stage(stage)
    spec = as_spec(st.get("data"), task=st.get("task"), columns=st.get("columns"))
    src = file_splits(st["train"], st.get("dev"), st.get("test"), spec, st.get("dev_fraction", 0.1), seed)
    name = str(stage.get("name") or src.name).replace(".", "-")
    if hasattr(torch.nn.ModuleDict, name):  # "train", "eval", ...: a task key may not shadow a method
        name = f"{name}-{st['task']}"
        src.notes.append(f"file stage named {name!r} (its file's stem is a reserved word; name= sets another)")
    src.name = name
    return src


def multitask(model_dir: str | Path, datasets: list[str | dict], run_dir: str | Path,
              train_config: TrainConfig | dict | None = None, strategy=None, max_train: int | None = None,
              mix: str = "proportional", progress: bool = True, *, options: dict[str, dict] | None = None,
              data_dir: str | Path | None = None, max_eval: int | None = None, eval_batch_size: int = 32,
              resume: bool = False, say: Callable[[str], None] = print) -> dict:
    """Multi-task fine-tuning: one shared encoder, one head per data set, each optimizer step
    one task's batch (``mix``: proportional or round_robin; see ``transfer.MixedSource``), the
    task's summed loss. Each task is evaluated and saved to ``run_dir/models/<dataset>`` as a
    complete model (the shared encoder with that task's head). A data set is a name or a dict
    of ``finetune``'s file arguments (``train``, ``task``, ``columns``, ...; named by its file's stem)."""
    if len(datasets) < 2:
        raise ConfigError(f"multi-task fine-tuning needs two or more different data sets, got {datasets}")
    run_dir = Path(run_dir)
    strategy = transfer.as_strategy(strategy)
    base, tok, _ = load_any(model_dir)
    seed = train_config.seed if isinstance(train_config, TrainConfig) else int((train_config or {}).get("seed", 0))
    parts: dict[str, Any] = {}
    notes: list[str] = []
    for stage in datasets:
        src = _stage_splits(stage, data_dir, seed)
        name, spec = src.name, src
        if name in parts:
            raise ConfigError(f"multi-task fine-tuning needs different data sets; {name!r} comes twice")
        train = src.splits.pop("train")
        evals = src.splits
        for v in evals.values():
            v.examples = subsample(v.examples, max_eval, seed)
        labels = src.labels
        opts, fitted = task_options(spec.options, (options or {}).get(name), base.config, spec.task)
        task = get("task", spec.task)(tok, labels or None, opts)
        parts[name] = (spec, task, subsample(train.examples, max_train, seed), evals, labels)
        notes += [f"{name}: {n}" for n in [*([] if isinstance(stage, str) else src.notes), *fitted]]
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
    config = {"multitask": {"datasets": list(parts), "mix": mix, "source_model": str(model_dir),
                            "strategy": strategy.to_dict()}, "train": cfg.to_dict(), "model": base.config.to_dict()}
    trainer = Trainer(multi, base.config, cfg, mixed, run_dir, None, module, config=config, progress=progress,
                      on_step=plan.on_step)
    try:
        plan.on_step(trainer.step)
        at_start = transfer.trainable_fraction(trainer.module)
        for note in notes + plan.notes:
            say(note)
        fit = trainer.fit(resume=resume)
        summary = {"datasets": list(parts), "mix": mix, "notes": notes + plan.notes, "strategy": strategy.to_dict(),
                   "trainable": {**plan.summary(), **at_start}, "train": fit, "tasks": {}}
        if trainer.dist.main:
            for name, (spec, task, examples, evals, labels) in parts.items():
                out = run_dir / "models" / name
                summary["tasks"][name] = {
                    "task": spec.task, "train_examples": len(examples),
                    "eval": _evaluate(task, modules[name], evals, eval_batch_size, run_dir / "eval" / name),
                    "model_dir": str(out)}
                record = {**spec.record, "dataset": name, "task": spec.task, "labels": labels,
                          "source_model": str(model_dir), "options": task.opts.to_dict(),
                          "strategy": strategy.to_dict(), "multitask": list(parts)}
                _save(modules[name].model, tok, labels, out, record)
    finally:
        trainer.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    return summary


# ---------------------------------------------------------------- evaluation

def _eval_data(model_dir, record: dict, dataset, split, data_dir, data_file, task, columns, data) -> tuple:
    """(name, task, Dataset, trained-with-this-data) for ``evaluate_dataset``."""
    if data_file is not None:
        same = "files" in record
        base = dict(record.get("data") or {}) if same else {}
        if data:
            base.update(data)
        if columns:
            base["columns"] = {**base.get("columns", {}), **columns}
        name = task or base.get("task") or _user_task(record.get("task"))
        if name is None:
            raise ConfigError("--data FILE needs --task (the model records none)")
        spec = as_spec(base, task=name)
        return Path(str(data_file)).stem, spec.registered, read_file(data_file, spec, train=False), same
    if dataset is not None:
        spec = dataset_spec(dataset)
        return dataset, spec.task, read_split(dataset, split, data_dir), record.get("dataset") == dataset \
            and "files" not in record
    if "files" in record:  # re-read the files the model was fine-tuned on
        files = record["files"]
        if any(str(v).startswith("<") for v in files.values()):
            raise ConfigError(f"{model_dir} was fine-tuned on in-memory data ({files}); give --data FILE")
        if split not in ("dev", "test", "train"):
            raise ConfigError(f"split {split!r}: a model fine-tuned on files has train, dev and test")
        src = file_splits(files["train"], files.get("dev"), files.get("test"), as_spec(record["data"]),
                          record.get("dev_fraction") or 0.1)
        if split not in src.splits:
            raise ConfigError(f"{model_dir} was fine-tuned without a {split} file; give --data FILE")
        return record["dataset"], src.task, src.splits[split], True
    if record.get("dataset"):
        return _eval_data(model_dir, record, record["dataset"], split, data_dir, None, task, columns, data)
    raise ConfigError(f"{model_dir} records no data it was fine-tuned on; give --data FILE (with --task) or "
                      "--dataset NAME")


def _user_task(task: str | None) -> str | None:
    return {"multiple_choice": "multiple-choice"}.get(task, task) if task else None


def evaluate_dataset(model_dir: str | Path, dataset: str | None = None, split: str = "dev",
                     data_dir: str | Path | None = None, batch_size: int = 32, report_dir: str | Path | None = None,
                     max_examples: int | None = None, options: dict | None = None, *, data_file: Any = None,
                     task: str | None = None, columns: dict | None = None, data: dict | None = None) -> dict:
    """The task metrics of a fine-tuned model on ``data_file`` (read like its training files,
    with ``task`` / ``columns`` / ``data`` over what the model recorded), on one split of
    the named ``dataset``, or, with neither, on the ``split`` of the files (or set) the model
    records in ``finetune.json`` -- never on a named set that merely shares their name. A
    report is written to ``report_dir`` when given; a file without labels gets predictions
    only. The task options it was trained with apply, under ``options``."""
    record = _source_record(model_dir)
    name, task_name, examples, same = _eval_data(model_dir, record, dataset, split, data_dir, data_file, task,
                                                  columns, data)
    model, tok, labels = load_any(model_dir)
    examples.examples = subsample(examples.examples, max_examples, 0)
    task_cls = get("task", task_name)
    if task_cls.needs_labels:
        if not labels:
            labels = examples.labels if model.config.num_labels == len(examples.labels) else []
        if not labels:
            raise ConfigError(f"{model_dir} has no {LABELS} and its head does not fit {name}'s "
                              f"{len(examples.labels)} labels; fine-tune it first (sesame finetune)")
        from sesame.tasks.files import check_labels

        check_labels(examples, labels, task_name, split if data_file is None else "eval")
    trained = record.get("options", {}) if same or data_file is not None else {}
    defaults = dataset_spec(dataset).options if dataset is not None else {}
    opts, _ = task_options(defaults, {**trained, **(options or {})}, model.config, task_name)
    task_obj = task_cls(tok, labels or None, opts)
    head = model.heads[task_obj.head] if task_obj.head in model.heads else None
    module = task_obj.wrap(model)
    if head is None or module.model.heads[task_obj.head] is not head:
        raise ConfigError(f"{model_dir} has no trained `{task_obj.head}` head for the {task_name} task of {name}; "
                          f"fine-tune it first: sesame finetune {model_dir} --train FILE --task ...")
    label = f"{name}-{split}" if data_file is None else name
    if not examples.labeled:
        rows = predictions(task_obj, module, examples.examples, batch_size)
        out = {"dataset": name, "split": split, "data": examples.path, "task": task_name, "examples": len(rows),
               "metrics": None, "predictions": rows}
        if report_dir is not None:
            path = Path(report_dir) / f"{label}-predictions.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            out["files"] = {"predictions": str(path)}
        return out
    result = task_obj.evaluate(module, examples.examples, batch_size, report_dir=report_dir, name=label)
    return {"dataset": name, "split": split, "data": examples.path, "counts": examples.counts, **result}


evaluate = evaluate_dataset


class _CallableModule(types.ModuleType):
    """``sesame.finetune(...)`` calls ``finetune`` while ``sesame.finetune`` stays this module."""

    def __call__(self, *args, **kwargs):
        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
