"""Pre-training end to end: text -> tokenizer -> corpus shards -> objective ->
trainer -> a model directory. What `sesame pretrain` and `sesame demo` run.

A run directory holds ``config.toml``, ``tokenizer.json``, ``corpus/`` (the
prepared shards), ``checkpoints/``, ``metrics.jsonl``, ``plots/`` and, at the
end, ``model/`` (a sesame model directory with its tokenizer, ready for
``sesame.pipeline``)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

from sesame.config import RunConfig, get
from sesame.data import Corpus, build_dataset, prepare
from sesame.errors import ConfigError, DataError
from sesame.models import save_model
from sesame.objectives import Vocab, build_objective
from sesame.tokenize import Tokenizer, load_tokenizer, train_tokenizer
from sesame.train import Trainer
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
    tok.save(saved)
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
    if any(getattr(get("objective", n), "streams", False) for n in run.objective.names):  # Transformer-XL
        return _prepare_streams(run, tok, corpus, [note_tok, note_corpus, *notes], holdout)
    dataset = build_dataset(corpus, run.data, seed=run.train.seed)
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
             f"{n_train:,} training examples of {run.data.seq_len} tokens ({run.data.examples}), {n_eval:,} held out"]
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


def pretrain(run: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
             on_log: Callable | None = None, on_eval: Callable | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Train ``run`` in ``run_dir``; the final model goes to ``run_dir/model``."""
    run_dir = Path(run_dir)
    prep = prepare_run(run, run_dir, progress)
    for note in prep.notes:
        say(note)
    task = build_task(prep.config, prep.tokenizer)
    if hasattr(task, "check_corpus"):
        task.check_corpus(prep.corpus)  # e.g. entity masking on a corpus without entity spans
    trainer = Trainer.from_run_config(task, prep.config, prep.train, run_dir, prep.eval,
                                      on_log=on_log, on_eval=on_eval, progress=progress)
    try:
        summary = trainer.fit(resume=resume)
        if trainer.dist.main:
            model = trainer.module.model if hasattr(trainer.module, "model") else trainer.module
            save_model(model, run_dir / "model", extra={TOKENIZER: prep.tokenizer.to_json()})
            if hasattr(trainer.module, "generator"):  # ELECTRA: the generator beside the discriminator
                save_model(trainer.module.generator, run_dir / "generator",
                           extra={TOKENIZER: prep.tokenizer.to_json()})
    finally:
        trainer.close()
    summary["model_dir"] = str(run_dir / "model")
    return summary
