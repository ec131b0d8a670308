"""Running a static-embedding training: the corpus (cached), the epochs over it chunk by
chunk with a progress bar (words/s, ETA), resumable checkpoints, and the vector files.

Run directory::

    out/config.json                  the resolved settings and inputs
    out/corpus/                      the encoded corpus (ids.bin, docs.npy, vocab.json)
    out/checkpoint/                  params.safetensors + state.json (epoch, chunk, words done)
    out/vectors.safetensors, vocab.json, vectors.txt, vectors.bin, summary.json

Chunk ``k`` of epoch ``e`` draws every random number (subsampling, windows, negatives,
order) from a generator seeded by (seed, e, k) and its learning rate from the words done
before it, so a resumed run continues exactly where the stopped one was."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from sesame.errors import CheckpointError, ConfigError, SesameError
from sesame.static.config import StaticConfig
from sesame.static.cooccur import count_cooccurrences
from sesame.static.corpus import Corpus, build_corpus
from sesame.static.glove import GloVe, weighting
from sesame.static.hogwild import Hogwild, LinearLR
from sesame.static.vectors import Vectors
from sesame.static.word2vec import Word2Vec

CKPT, PARAMS, STATE = "checkpoint", "params.safetensors", "state.json"


class TrainingDiverged(SesameError):
    """The loss became NaN or infinite."""


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(out: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write ``checkpoint.tmp`` whole, then swap it in for ``checkpoint``."""
    tmp, final, old = out / (CKPT + ".tmp"), out / CKPT, out / (CKPT + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / PARAMS))
    _write_json(tmp / STATE, state)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    for name in (CKPT, CKPT + ".old"):
        d = out / name
        if (d / STATE).is_file() and (d / PARAMS).is_file():
            try:
                return load_file(str(d / PARAMS)), json.loads((d / STATE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise CheckpointError(f"{d} is corrupt ({err}); delete it to start over") from None
    return None


def _bar(total: int, initial: int, unit: str, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, unit_scale=True, dynamic_ncols=True, desc=desc)


def train_static(inputs: list[str], out: str | Path, cfg: StaticConfig, progress: bool = True,
                 overwrite: bool = False, stop_after_words: int | None = None) -> dict:
    """Train ``cfg.method`` on ``inputs`` into ``out``; a run stopped (or killed) earlier in
    the same ``out`` with the same settings resumes from its checkpoint. ``stop_after_words``
    pauses the run (checkpoint written) once that many words are done, for time-boxed work."""
    out = Path(out)
    settings = {"static": cfg.to_dict(), "inputs": [str(Path(i).resolve()) for i in inputs]}
    if (out / "config.json").is_file():
        before = json.loads((out / "config.json").read_text(encoding="utf-8"))
        if before != settings:
            if not overwrite:
                raise ConfigError(f"{out} holds a run with other settings or inputs; use another --out, "
                                  "or --overwrite to replace it")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", settings)
    t0 = time.perf_counter()
    corpus = build_corpus(inputs, cfg, out / "corpus")
    prep_s = time.perf_counter() - t0
    return train_corpus(corpus, cfg, out, progress, stop_after_words, {"corpus_seconds": round(prep_s, 2)})


def train_corpus(corpus: Corpus, cfg: StaticConfig, out: str | Path, progress: bool = True,
                 stop_after_words: int | None = None, extra: dict | None = None) -> dict:
    """Train on an encoded corpus into ``out`` (checkpoints and vector files); resumes from
    a checkpoint there. Returns the summary (also written to ``summary.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.method == "glove":
        summary = _train_glove(corpus, cfg, out, progress, stop_after_words)
    else:
        summary = _train_word2vec(corpus, cfg, out, progress, stop_after_words)
    summary = {"method": cfg.method, "arch": cfg.arch if cfg.method != "glove" else None,
               "vocab": len(corpus.vocab), "corpus_words": corpus.words, "epochs": cfg.epochs,
               **(extra or {}), **summary}
    _write_json(out / "summary.json", summary)
    return summary


def _train_word2vec(corpus: Corpus, cfg: StaticConfig, out: Path, progress: bool, stop: int | None) -> dict:
    model = Word2Vec(cfg, corpus.vocab)
    chunks = corpus.chunks(cfg.chunk_words)
    total = cfg.epochs * corpus.words
    state = {"epoch": 0, "chunk": 0, "words_done": 0, "loss": 0.0, "predictions": 0, "train_seconds": 0.0}
    found = load_checkpoint(out)
    if found is not None:
        model.load(found[0])
        state = found[1]
    if state["epoch"] >= cfg.epochs:
        return _finish_word2vec(model, corpus, cfg, out, state)
    bar = _bar(total, state["words_done"], "word", progress, cfg.method)
    span = max(cfg.lr - cfg.min_lr, 0.0)
    pool = Hogwild(model, corpus, cfg) if cfg.workers > 1 else None
    if pool is not None:  # starting the workers is training time too
        state["train_seconds"] += pool.start_seconds
    try:
        return _epochs(model, corpus, cfg, out, stop, state, chunks, total, bar, span, pool)
    finally:
        if pool is not None:
            pool.close()


def _epochs(model, corpus, cfg, out, stop, state, chunks, total, bar, span, pool) -> dict:
    last_save = time.perf_counter()
    while state["epoch"] < cfg.epochs:
        e = state["epoch"]
        for k in range(state["chunk"], len(chunks)):
            a, b = chunks[k]
            start = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, e, k])
            done = e * corpus.words + a
            lr_at = LinearLR(cfg.lr, span, done, b - a, total)
            if pool is None:
                loss, n = model.train_chunk(corpus.ids[a:b], corpus.doc_of(a, b), rng, lr_at)
            else:
                loss, n = pool.chunk(a, b, e, k, lr_at)
            _check_finite(loss, f"epoch {e + 1}, chunk {k + 1}", cfg, len(corpus.vocab))
            state.update(chunk=k + 1, words_done=done + (b - a), loss=state["loss"] + loss,
                         predictions=state["predictions"] + n,
                         train_seconds=state["train_seconds"] + time.perf_counter() - start)
            if bar is not None:
                bar.update(b - a)
                bar.set_postfix(loss=f"{loss / max(n, 1):.3f}", epoch=e + 1)
            paused = stop is not None and state["words_done"] >= stop
            if k + 1 == len(chunks):
                state.update(epoch=e + 1, chunk=0)
            if paused or k + 1 == len(chunks) or time.perf_counter() - last_save > cfg.checkpoint_seconds:
                save_checkpoint(out, model.state(), state)
                last_save = time.perf_counter()
            if paused:
                if bar is not None:
                    bar.close()
                return {"paused": True, **_rates(state)}
    if bar is not None:
        bar.close()
    return _finish_word2vec(model, corpus, cfg, out, state)


def _check_finite(loss: float, where: str, cfg: StaticConfig, vocab: int) -> None:
    if not np.isfinite(loss):
        raise TrainingDiverged(
            f"training diverged at {where} (the loss is not finite); lower static.lr ({cfg.lr}) or "
            f"static.batch ({cfg.batch}): the updates of a batch that share a row add up, so keep the batch far "
            f"below the vocabulary ({vocab} words). The last checkpoint is kept.")


def _rates(state: dict) -> dict:
    secs = state["train_seconds"]
    return {"words_done": state["words_done"], "train_seconds": round(secs, 2),
            "words_per_second": round(state["words_done"] / max(secs, 1e-9), 1),
            "loss_per_prediction": state["loss"] / max(state.get("predictions", 0), 1)}


def _finish_word2vec(model: Word2Vec, corpus: Corpus, cfg: StaticConfig, out: Path, state: dict) -> dict:
    subwords = ngrams = None
    if model.fasttext:
        subwords = {"minn": cfg.minn, "maxn": cfg.maxn, "buckets": cfg.buckets}
        ngrams = model.ngram_vectors()
    vec = Vectors(corpus.vocab.words, model.word_vectors(), corpus.vocab.counts.tolist(), subwords, ngrams)
    vec.save(out)
    return {"paused": False, **_rates(state)}


def _train_glove(corpus: Corpus, cfg: StaticConfig, out: Path, progress: bool, stop: int | None) -> dict:
    cooc_path = out / "cooccurrence.safetensors"
    count_s = 0.0
    if not cooc_path.is_file():
        start = time.perf_counter()
        chunks = corpus.chunks(cfg.chunk_words)
        bar = _bar(corpus.words, 0, "word", progress, "co-occurrences")

        def stream():
            for a, b in chunks:
                yield corpus.ids[a:b], corpus.doc_of(a, b)
                if bar is not None:
                    bar.update(b - a)

        rows, cols, vals = count_cooccurrences(stream(), len(corpus.vocab), cfg.window, out / "cooc-shards",
                                               cfg.cooc_buffer, cfg.cooc_shards)
        if bar is not None:
            bar.close()
        count_s = time.perf_counter() - start
        tmp = out / "cooccurrence.tmp"
        save_file({"rows": torch.from_numpy(rows), "cols": torch.from_numpy(cols),
                   "counts": torch.from_numpy(vals)}, str(tmp), metadata={"count_seconds": str(count_s)})
        os.replace(tmp, cooc_path)
    cooc = load_file(str(cooc_path))
    rows, cols, counts = cooc["rows"], cooc["cols"], cooc["counts"]
    logx = counts.log().float()
    fx = weighting(counts, cfg.x_max, cfg.alpha).float()
    model = GloVe(cfg, len(corpus.vocab))
    state = {"epoch": 0, "loss": 0.0, "train_seconds": 0.0, "count_seconds": count_s, "epoch_loss": []}
    found = load_checkpoint(out)
    if found is not None:
        model.load(found[0])
        state = found[1]
    bar = _bar(cfg.epochs * len(rows), state["epoch"] * len(rows), "entry", progress, "glove")
    while state["epoch"] < cfg.epochs:
        start = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, state["epoch"]])
        loss = model.train_epoch(rows, cols, logx, fx, rng, bar.update if bar is not None else None)
        _check_finite(loss, f"epoch {state['epoch'] + 1}", cfg, len(corpus.vocab))
        state.update(epoch=state["epoch"] + 1, train_seconds=state["train_seconds"] + time.perf_counter() - start,
                     epoch_loss=state["epoch_loss"] + [loss / max(len(rows), 1)])
        save_checkpoint(out, model.state(), state)
        if stop is not None and state["epoch"] * corpus.words >= stop and state["epoch"] < cfg.epochs:
            return {"paused": True, "nonzeros": len(rows), **state}
    if bar is not None:
        bar.close()
    Vectors(corpus.vocab.words, model.vectors(), corpus.vocab.counts.tolist()).save(out)
    secs = state["train_seconds"] + state["count_seconds"]
    return {"paused": False, "nonzeros": len(rows), **state,
            "words_per_second": round(cfg.epochs * corpus.words / max(secs, 1e-9), 1)}
