"""Pre-training end to end: text -> tokenizer -> corpus shards -> objective ->
trainer -> a model directory. What `sesame pretrain` and `sesame demo` run.

A run directory holds ``config.toml``, ``tokenizer.json``, ``corpus/`` (the
prepared shards), ``checkpoints/``, ``metrics.jsonl``, ``plots/`` and, at the
end, ``model/`` (a sesame model directory with its tokenizer, ready for
``sesame.pipeline``)."""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Callable

from sesame.config import RunConfig, get
from sesame.data import Corpus, build_dataset, prepare
from sesame.errors import ConfigError, DataError
from sesame.models import save_model
from sesame.objectives import Vocab, build_objective
from sesame.objectives.compose import reads_streams
from sesame.outputs import claim_run_dir, model_outputs, writing
from sesame.tokenize import Tokenizer, load_tokenizer, train_tokenizer
from sesame.train import Trainer, find_resumable
from sesame.train.lock import run_lock
from sesame.train.resume import check_resume
from sesame.train.source import DatasetSource, Subset

TOKENIZER = "tokenizer.json"


@dataclasses.dataclass
class Prepared:
    """What a run trains on, after the tokenizer and corpus steps."""

    config: RunConfig
    tokenizer: Tokenizer
    corpus: Corpus
    train: DatasetSource
    eval: DatasetSource | None
    notes: list[str]


def get_tokenizer(run: RunConfig, run_dir: Path, progress: bool = True) -> tuple[Tokenizer, str]:
    saved = run_dir / TOKENIZER
    if run.tokenizer.path:
        return load_tokenizer(run.tokenizer.path), f"tokenizer loaded from {run.tokenizer.path}"
    if saved.is_file():
        return Tokenizer.load(saved), f"tokenizer reused from {saved}"
    files = run.tokenizer.files or run.data.inputs
    if not files:
        raise ConfigError("nothing to train a tokenizer on: set data.inputs (or tokenizer.files / tokenizer.path)")
    tok = train_tokenizer(files, run.tokenizer, show_progress=progress)
    tmp = saved.with_name(saved.name + ".tmp")  # written whole, then renamed: a resume never reuses half a file
    with writing(saved, cleanup=tmp):
        tmp.write_text(tok.to_json(), encoding="utf-8")
        os.replace(tmp, saved)
    return tok, f"trained a {run.tokenizer.kind} tokenizer of {tok.vocab_size} tokens -> {saved}"


def fit_model_to_tokenizer(run: RunConfig, tok: Tokenizer) -> tuple[RunConfig, list[str]]:
    """The model's vocabulary and padding id follow the tokenizer (said, not silent)."""
    notes = []
    changes = {}
    if run.model.vocab_size != tok.vocab_size:
        changes["vocab_size"] = tok.vocab_size
        notes.append(f"model.vocab_size {run.model.vocab_size} -> {tok.vocab_size} (the tokenizer's)")
    if tok.pad_id is not None and run.model.pad_token_id != tok.pad_id:
        changes["pad_token_id"] = tok.pad_id
    if not changes:
        return run, notes
    model = run.model.replace(**changes)
    generator = run.generator.replace(**changes) if run.generator is not None else None
    return dataclasses.replace(run, model=model, generator=generator), notes


def get_corpus(run: RunConfig, run_dir: Path, tok: Tokenizer, progress: bool = True) -> tuple[Corpus, str]:
    if run.data.corpus:
        corpus = Corpus(run.data.corpus)
        if corpus.meta.get("tokenizer_hash") not in (None, tok.hash):
            raise DataError(
                f"corpus {run.data.corpus} was prepared with another tokenizer (hash "
                f"{corpus.meta.get('tokenizer_hash')} != {tok.hash}); prepare it again with this one"
            )
        return corpus, f"corpus {run.data.corpus}"
    if not run.data.inputs:
        raise ConfigError("no data: set data.inputs (files, folders, globs) or data.corpus (prepared shards)")
    out = run_dir / "corpus"
    prepare(run.data.inputs, tok, out, run.data, progress=progress)
    return Corpus(out), f"corpus prepared in {out}"


def prepare_run(run: RunConfig, run_dir: str | Path, progress: bool = True, holdout: float = 0.02) -> Prepared:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok, note_tok = get_tokenizer(run, run_dir, progress)
    run, notes = fit_model_to_tokenizer(run, tok)
    corpus, note_corpus = get_corpus(run, run_dir, tok, progress)
    if reads_streams(run.objective):  # Transformer-XL recurrence
        return _prepare_streams(run, tok, corpus, [note_tok, note_corpus, *notes], holdout)
    data = run.data  # an objective that shortens its input (t5-span) reads longer raw windows
    for part in run.objective.resolved():
        objective = get("objective", part.name)
        if hasattr(objective, "window_length"):
            data = data.replace(seq_len=objective.window_length(data.seq_len, part.options))
    dataset = build_dataset(corpus, data, seed=run.train.seed)
    n_eval = int(math.floor(len(dataset) * holdout)) if run.train.eval_every else 0
    n_train = len(dataset) - n_eval
    if n_train < run.train.batch_size:
        raise DataError(
            f"the corpus gives {n_train} training examples of {run.data.seq_len} tokens, fewer than one batch "
            f"of train.batch_size = {run.train.batch_size}; add text or lower the batch size"
        )
    train = DatasetSource(Subset(dataset, 0, n_train), run.train.batch_size, seed=run.train.seed)
    evaluation = None
    if n_eval:
        size = min(n_eval, run.train.micro_batch_size or run.train.batch_size)
        evaluation = DatasetSource(Subset(dataset, n_train, len(dataset)), size, shuffle=False)
    notes = [note_tok, note_corpus, *notes,
             f"{n_train:,} training examples of {data.seq_len} tokens ({run.data.examples}), {n_eval:,} held out"]
    return Prepared(run, tok, corpus, train, evaluation, notes)


def _prepare_streams(run: RunConfig, tok: Tokenizer, corpus: Corpus, notes: list[str], holdout: float) -> Prepared:
    from sesame.data.streams import stream_sources

    held = holdout if run.train.eval_every else 0.0
    size = run.train.micro_batch_size or run.train.batch_size
    train, evaluation = stream_sources(corpus, run.data.seq_len, run.train.batch_size, size, held)
    notes.append(f"{run.train.batch_size} streams of {train.row:,} tokens in segments of {run.data.seq_len} "
                 f"({train.segments} steps per epoch); {'no' if evaluation is None else evaluation.batch_size} "
                 "held-out streams")
    return Prepared(run, tok, corpus, train, evaluation, notes)


def build_task(run: RunConfig, tok: Tokenizer):
    return build_objective(run.objective, Vocab.from_tokenizer(tok), generator=run.generator)


# what a pretrain run writes into its directory; --overwrite replaces these and keeps anything else
RUN_OUTPUTS = ("config.toml", TOKENIZER, "corpus", "checkpoints", "metrics.jsonl", "plots", "tensorboard",
               *model_outputs("model", "generator"))


def _finished(run: RunConfig, run_dir: Path, allow_config_change: bool) -> int | None:
    """The step of a run that already reached ``train.steps`` and saved its model, else None;
    checks the resumed config against the checkpoint's first (before any tokenizer or corpus work)."""
    path, state, _ = find_resumable(run_dir / "checkpoints", verify=False)
    if state is None:
        return None
    old = state.get("config")
    if isinstance(old, dict):
        # the model's vocabulary follows the tokenizer (fit_model_to_tokenizer): checked by the trainer
        fitted = tuple(f"{s}.{k}" for s in ("model", "generator") for k in ("vocab_size", "pad_token_id"))
        check_resume(old, run.to_dict(), state["step"], allow_config_change, str(run_dir), ignore=fitted)
    if state["step"] >= run.train.steps and (run_dir / "model" / "config.toml").is_file():
        return state["step"]
    return None


def pretrain(run: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
             on_log: Callable | None = None, on_eval: Callable | None = None,
             say: Callable[[str], None] = print, overwrite: bool = False,
             allow_config_change: bool = False) -> dict:
    """Train ``run`` in ``run_dir``; the final model goes to ``run_dir/model``. The run
    directory is locked first thing and for the whole run. A non-empty ``run_dir`` needs
    ``resume`` or ``overwrite``; ``allow_config_change`` admits changed optimisation settings on
    resume (see train.resume). Resuming a finished run returns at once with ``finished``."""
    run_dir = Path(run_dir)
    with run_lock(run_dir, say):
        claim_run_dir(run_dir, resume, overwrite, RUN_OUTPUTS)  # overwrite removes only RUN_OUTPUTS
        if resume:
            done = _finished(run, run_dir, allow_config_change)
            if done is not None:
                return {"finished": True, "steps": done, "start_step": done, "loss": None,
                        "model_dir": str(run_dir / "model")}
        return _pretrain(run, run_dir, resume, progress, on_log, on_eval, say, allow_config_change)


def _pretrain(run, run_dir, resume, progress, on_log, on_eval, say, allow_config_change) -> dict:
    with writing(run_dir):  # a full disk while preparing: one error line; the same command resumes
        prep = prepare_run(run, run_dir, progress)
    for note in prep.notes:
        say(note)
    task = build_task(prep.config, prep.tokenizer)
    if hasattr(task, "check_corpus"):
        task.check_corpus(prep.corpus)  # e.g. entity masking on a corpus without entity spans
    if hasattr(task, "fit_prior"):
        task.fit_prior(prep.train)  # the bilm softmax bias starts at the training unigram (objectives/bilm.py)
    trainer = Trainer.from_run_config(task, prep.config, prep.train, run_dir, prep.eval,
                                      on_log=on_log, on_eval=on_eval, progress=progress)
    try:
        summary = trainer.fit(resume=resume, allow_config_change=allow_config_change)
        if trainer.dist.main:
            model = trainer.module.model if hasattr(trainer.module, "model") else trainer.module
            save_model(model, run_dir / "model", extra={TOKENIZER: prep.tokenizer.to_json()})
            if hasattr(trainer.module, "generator"):  # ELECTRA: the generator beside the discriminator
                save_model(trainer.module.generator, run_dir / "generator",
                           extra={TOKENIZER: prep.tokenizer.to_json()})
    finally:
        trainer.close()
    summary["model_dir"] = str(run_dir / "model")
    summary["finished"] = summary["start_step"] >= summary["steps"]
    return summary
