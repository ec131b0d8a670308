"""``sesame data prepare``: raw text -> tokenized, memory-mapped shards with document,
sentence, word-start and entity records.

The inputs are planned into shards (pieces of files, cut only at document
boundaries); worker processes each stream one shard at a time in chunks of about a
megabyte (bounded memory). A shard directory appears only when complete, and the plan
is saved first, so running the same command again resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np

from sesame.config.data import DataConfig
from sesame.data.read import InputFile, PieceReader, doc_hash, read_piece, resolve_inputs, split_points
from sesame.data.sentences import sentence_spans
from sesame.data.shards import FORMAT_VERSION, Shard, ShardWriter, token_dtype, write_json
from sesame.errors import DataError
from sesame.tokenize import PhraseLexicon, Tokenizer, get_segmenter, load_tokenizer
from sesame.tokenize.chars import has_cjk
from sesame.tokenize.entities import char_spans_to_tokens
from sesame.tokenize.segment import word_starts_with_words

CHUNK_CHARS = 1 << 20  # characters of text encoded at a time
SETTINGS = ("format", "text_field", "column", "extensions", "doc_boundary", "sentences", "segmenter",
            "user_dict", "entities", "dedup", "shard_mb", "seq_len")
_MiB = 1 << 20


@dataclasses.dataclass
class _Worker:
    tok: Tokenizer
    cfg: DataConfig
    files: list[InputFile]
    out: Path
    report: Callable[[int], None]
    lexicon: PhraseLexicon | None = None


_STATE: _Worker | None = None


def _init_worker(tok_json: str, cfg: dict, files: list[dict], out: str, q, single_thread: bool) -> None:
    global _STATE
    if single_thread:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    cfg_ = DataConfig.from_dict(cfg)
    _STATE = _Worker(Tokenizer.from_json(tok_json), cfg_, [InputFile(**f) for f in files], Path(out),
                     q.put if q is not None else (lambda n: None),
                     PhraseLexicon.load(cfg_.entities) if cfg_.entities else None)


# ---- one shard ------------------------------------------------------------------------
def _hash_unit(pieces: list[list[int]]) -> np.ndarray:
    st = _STATE
    hashes = []
    for fi, a, b in pieces:
        for doc in read_piece(st.files[fi], a, b, st.cfg, Counter()):
            hashes.append(doc_hash(doc.text))
    return np.array(hashes, dtype=np.uint64)


def _process_unit(index: int, pieces: list[list[int]], drop: list[int] | None) -> dict:
    st = _STATE
    tok, cfg = st.tok, st.cfg
    writer = ShardWriter(st.out / f"shard-{index:05d}", token_dtype(tok.vocab_size))
    stats: dict[str, Counter] = {}
    counts: Counter = Counter()
    types: dict[str, int] = {}
    dropset = set(drop or ())
    batch: list = []
    chars = doc_index = reported = 0
    for fi, a, b in pieces:
        f = st.files[fi]
        fstats = stats.setdefault(f.path, Counter())
        reader = PieceReader(f, a, b, fstats)
        done_before = reported
        for doc in read_piece(f, a, b, cfg, fstats, reader):
            h = doc_hash(doc.text)
            counts["chars_read"] += len(doc.text)
            if doc_index in dropset:
                counts["duplicates_removed"] += 1
                doc_index += 1
                continue
            doc_index += 1
            fstats["documents"] += 1
            batch.append((doc, h))
            chars += len(doc.text)
            if chars >= CHUNK_CHARS:
                _encode_batch(batch, writer, counts, types)
                batch, chars = [], 0
                now = done_before + reader.bytes_done
                st.report(now - reported)
                reported = now
        if batch:
            _encode_batch(batch, writer, counts, types)
            batch, chars = [], 0
        now = done_before + (b - a)
        st.report(now - reported)
        reported = now
    stats_out = {path: {k: v for k, v in c.items()} for path, c in stats.items()}
    return writer.close({"pieces": pieces, "files": stats_out, "counts": dict(counts),
                         "entity_types": sorted(types, key=types.get)})


def _encode_batch(batch: list, writer: ShardWriter, counts: Counter, types: dict[str, int]) -> None:
    """Encode a chunk of documents and append it to the shard. Sentence starts are
    mapped onto the document's tokens; documents with word spans (gold or jieba) or
    entities also need token offsets, handled once for the whole chunk."""
    st = _STATE
    tok, cfg = st.tok, st.cfg
    seg_mode = cfg.segmenter
    need: list[bool] = []
    bounds: list[list[int]] = []
    flagged = []  # (doc index, char base, words, gold, entities)
    base = 0
    for d, (doc, _) in enumerate(batch):
        spans = doc.sentences if doc.sentences and cfg.sentences == "rules" else \
            sentence_spans(doc.text, cfg.sentences)
        bounds.append([s for s, _ in spans])
        words, gold = None, False
        if doc.words is not None and seg_mode in ("auto", "gold"):
            words, gold = doc.words, True
        elif seg_mode in ("auto", "jieba") and has_cjk(doc.text):
            words = get_segmenter("jieba", cfg.user_dict).spans(doc.text)
        entities = list(doc.entities or ())
        if st.lexicon is not None:
            entities += st.lexicon.find(doc.text)
        flag = words is not None or bool(entities)
        if flag:
            flagged.append((d, base, words, gold, entities))
            base += len(doc.text) + 1
        need.append(flag)
    enc = tok.encode_arrays([doc.text for doc, _ in batch], offsets=need, boundaries=bounds)
    doc_len = enc.lengths
    lens: list[int] = []
    for n, b in zip(doc_len.tolist(), enc.boundaries):
        prev = 0
        for t in b[1:]:
            t = min(max(t, prev), n)
            lens.append(t - prev)
            prev = t
        lens.append(n - prev)
    sent_len = np.array(lens, dtype=np.int64)
    starts = enc.word_starts
    rows = np.zeros((0, 3), dtype=np.int64)
    if flagged:
        starts, rows = _words_and_entities(batch, flagged, enc, need, starts, counts, types)
    keep = doc_len > 0
    counts["empty_after_tokenizing"] += int((~keep).sum())
    counts["chars_kept"] += sum(len(doc.text) for (doc, _), k in zip(batch, keep.tolist()) if k)
    window = max(1, cfg.seq_len - 2)
    long = doc_len > window
    counts["long_documents"] += int(long.sum())
    counts["long_document_windows"] += int(np.ceil(doc_len[long] / window).sum())
    if tok.unk_id is not None:
        counts["unk_tokens"] += int(np.count_nonzero(enc.ids == tok.unk_id))
    hashes = np.array([h for _, h in batch], dtype=np.uint64)[keep]
    writer.add(enc.ids, starts, doc_len[keep], sent_len[sent_len > 0], rows, hashes)


def _words_and_entities(batch, flagged, enc, need, starts, counts, types):
    """Word starts and entity token spans of the flagged documents, in one pass over
    their concatenated text (documents joined by a newline)."""
    sel_tok = np.repeat(np.asarray(need, dtype=bool), enc.lengths)
    sel_len = enc.lengths[np.asarray(need, dtype=bool)]
    offs = enc.offsets[sel_tok] + np.repeat([b for _, b, *_ in flagged], sel_len)[:, None]
    text = "\n".join(batch[d][0].text for d, *_ in flagged)
    doc_tok = np.repeat(np.arange(len(flagged)), sel_len)
    words, gold_docs, ents = [], [], []
    for _, b, w, gold, e in flagged:
        if w is not None:
            words.append(np.asarray(w, dtype=np.int64).reshape(-1, 2) + b)
        gold_docs.append(gold)
        ents += [(s + b, t + b, kind) for s, t, kind in e]
    out = starts.copy()
    if words:
        gold_tok = np.asarray(gold_docs, dtype=bool)[doc_tok]
        out[sel_tok] = word_starts_with_words(text, offs, starts[sel_tok], np.concatenate(words), gold=gold_tok)
    rows = []
    if ents:
        ents.sort(key=lambda x: (x[0], -x[1]))
        spans_tok = char_spans_to_tokens([(s, e) for s, e, _ in ents], offs)
        index = np.nonzero(sel_tok)[0]
        last_end = -1
        for (ts, te), (_, _, kind) in zip(spans_tok.tolist(), ents):
            if te <= ts:
                counts["entities_without_tokens"] += 1
            elif ts < last_end:
                counts["entities_overlapping_dropped"] += 1
            else:
                rows.append((int(index[ts]), int(index[te - 1]) + 1, types.setdefault(kind, len(types))))
                last_end = te
    return out, np.array(rows, dtype=np.int64).reshape(-1, 3)


# ---- planning and running -------------------------------------------------------------
def _plan(files: list[InputFile], cfg: DataConfig) -> list[list[list[int]]]:
    total = sum(f.size for f in files)
    cap = int(cfg.shard_mb * _MiB)
    target = max(min(_MiB // 4, cap), min(cap, total // 32))  # >= 32 shards keep workers balanced
    pieces = []
    for i, f in enumerate(files):
        pts = split_points(f, target)
        pieces += [[i, a, b] for a, b in zip(pts[:-1], pts[1:])]
    units: list[list[list[int]]] = []
    size = 0
    for p in pieces:
        if not units or size + (p[2] - p[1]) > target:
            units.append([])
            size = 0
        units[-1].append(p)
        size += p[2] - p[1]
    return units


def _settings(cfg: DataConfig) -> dict:
    return {k: getattr(cfg, k) for k in SETTINGS}


def _check_out(out: Path, plan: dict, overwrite: bool) -> bool:
    """Prepare ``out``; True when an identical earlier plan is resumed."""
    plan_path = out / "plan.json"
    if plan_path.is_file():
        old = json.loads(plan_path.read_text(encoding="utf-8"))
        if old == plan:
            return True
        if not overwrite:
            changed = [k for k in plan if old.get(k) != plan[k]]
            raise DataError(
                f"{out} holds a different preparation (changed: {', '.join(changed)}); pass --overwrite "
                "to replace it or choose another --out"
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out} exists and is not a prepared corpus; choose an empty or new --out directory")
    if out.exists():
        for p in out.iterdir():
            if p.name.startswith("shard-") and p.is_dir():
                shutil.rmtree(p)
            elif p.name in ("meta.json", "plan.json", "tokenizer.json"):
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return False


def prepare(inputs: list[str] | None = None, tokenizer: Tokenizer | str | Path | None = None,
            out: str | Path | None = None, config: DataConfig | None = None, *, progress: bool = True,
            overwrite: bool = False, **overrides) -> dict:
    """Prepare a corpus; returns its ``meta.json`` contents. Fields of ``config`` may be
    overridden by keyword (``workers=2, dedup=True``...)."""
    cfg = config or DataConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    inputs = list(inputs if inputs is not None else cfg.inputs)
    tokenizer = tokenizer if tokenizer is not None else cfg.tokenizer
    out = out if out is not None else cfg.out
    if tokenizer is None:
        raise DataError("no tokenizer: pass --tokenizer (a tokenizer.json, vocab.txt, .model or a directory)")
    if out is None:
        raise DataError("no output directory: pass --out DIR")
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)
    if cfg.segmenter == "gold" and cfg.format not in ("tagged", "conll"):
        raise DataError("segmenter 'gold' needs pre-segmented input: set --format tagged (word/tag, e.g. "
                        "People's Daily) or conll")
    t0 = time.time()
    files, skipped = resolve_inputs(inputs, cfg)
    units = _plan(files, cfg)
    out = Path(out)
    plan = {"version": FORMAT_VERSION, "tokenizer_hash": tok.hash, "settings": _settings(cfg),
            "files": [[f.path, f.size, f.mtime_ns] for f in files], "units": units}
    resumed = _check_out(out, plan, overwrite)
    write_json(out / "plan.json", plan)
    tok.save(out / "tokenizer.json")
    for p in out.glob("shard-*.tmp"):
        shutil.rmtree(p)
    done = [i for i in range(len(units)) if (out / f"shard-{i:05d}" / "meta.json").is_file()]
    todo = [i for i in range(len(units)) if i not in set(done)]
    unit_bytes = [sum(b - a for _, a, b in u) for u in units]
    if cfg.segmenter in ("auto", "jieba") and any(f.cjk for f in files):
        get_segmenter("jieba", cfg.user_dict)  # load the dictionary once, before forking
    workers = max(1, min(cfg.workers, len(todo))) if todo else 1
    total_bytes = sum(unit_bytes)
    done_bytes = sum(unit_bytes[i] for i in done)
    file_dicts = [dataclasses.asdict(f) for f in files]
    pool = q = bar = None
    saved_env = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        if workers > 1:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            q = ctx.Queue()
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                       initargs=(tok.to_json(), cfg.to_dict(), file_dicts, str(out), q, True))
        else:
            _init_worker(tok.to_json(), cfg.to_dict(), file_dicts, str(out), None, False)
        if progress:
            bar = _progress_bar(total_bytes, done_bytes)
            if pool is None:
                _STATE.report = bar.update
        drops = _dedup_plan(units, pool) if cfg.dedup else {}
        _run(units, todo, drops, pool, q, bar)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if saved_env is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved_env
    meta = _finish(out, tok, cfg, files, skipped, units, drops_total=sum(len(v) for v in drops.values()))
    if not meta["num_docs"] or not meta["num_tokens"]:
        bad = meta["bad_input"]
        raise DataError(f"the inputs ({len(files)} files, {bad.get('lines', 0)} lines, {bad.get('empty_lines', 0)} "
                        f"empty, {bad.get('bad_records', 0)} bad records) hold no text to prepare; check the paths, "
                        "--format and --text-field/--column")
    meta["resumed_shards"] = len(done) if resumed else 0
    meta["elapsed_s"] = round(time.time() - t0, 3)
    meta["mb_per_s"] = round((total_bytes - done_bytes) / 1e6 / max(meta["elapsed_s"], 1e-9), 3)
    write_json(out / "meta.json", meta)
    return meta


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread in a process that forks workers

    return Bar(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1000, desc="prepare",
               dynamic_ncols=True, smoothing=0.1)


def _dedup_plan(units, pool) -> dict[int, list[int]]:
    """Exact duplicates across the whole input: keep the first occurrence in plan order;
    returns, per shard, the document numbers to drop."""
    hashes = list(pool.map(_hash_unit, units)) if pool is not None else [_hash_unit(u) for u in units]
    seen: set[int] = set()
    drops: dict[int, list[int]] = {}
    for i, hs in enumerate(hashes):
        for k, h in enumerate(hs.tolist()):
            if h in seen:
                drops.setdefault(i, []).append(k)
            else:
                seen.add(h)
    return drops


def _run(units, todo, drops, pool, q, bar) -> None:
    if pool is None:
        for i in todo:
            _process_unit(i, units[i], drops.get(i))
        return
    size = {i: sum(b - a for _, a, b in units[i]) for i in todo}  # largest first: a short tail
    futures = {pool.submit(_process_unit, i, units[i], drops.get(i)) for i in sorted(todo, key=lambda i: -size[i])}
    while futures:
        finished, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
        _drain(q, bar)
        for fut in finished:
            fut.result()  # re-raise a worker's error here
    _drain(q, bar)


def _drain(q, bar) -> None:
    while True:
        try:
            n = q.get_nowait()
        except queue_mod.Empty:
            return
        if bar is not None:
            bar.update(n)


def _finish(out: Path, tok: Tokenizer, cfg: DataConfig, files: list[InputFile], skipped: list[str],
            units: list, drops_total: int) -> dict:
    shards = [Shard(out / f"shard-{i:05d}") for i in range(len(units))]
    per_file: dict[str, Counter] = {}
    counts: Counter = Counter()
    types: list[str] = []
    for s in shards:
        for path, st in s.meta["files"].items():
            per_file.setdefault(path, Counter()).update({k: v for k, v in st.items() if isinstance(v, int)})
        counts.update(s.meta["counts"])
        for t in s.meta["entity_types"]:
            if t not in types:
                types.append(t)
    hashes = np.concatenate([s.hashes() for s in shards]) if shards else np.zeros(0, np.uint64)
    duplicates = drops_total + (len(hashes) - len(np.unique(hashes)))
    examples = [e for s in shards for st in s.meta["files"].values() for e in st.get("bad_record_examples", [])]
    totals = {k: sum(c.get(k, 0) for c in per_file.values())
              for k in ("bytes", "lines", "empty_lines", "whitespace_lines", "invalid_utf8_bytes",
                        "bad_records", "empty_documents", "documents")}
    num_tokens = sum(s.num_tokens for s in shards)
    chars_read = counts.get("chars_read", 0)
    return {
        "version": FORMAT_VERSION,
        "tokenizer_hash": tok.hash,
        "tokenizer_kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "special_ids": tok.special_ids,
        "tokens_dtype": token_dtype(tok.vocab_size).name,
        "settings": _settings(cfg),
        "inputs": [{"path": f.path, "format": f.format, "doc_boundary": f.boundary, "bytes": f.size}
                   for f in files],
        "skipped_inputs": skipped,
        "shards": [s.path.name for s in shards],
        "num_docs": sum(s.meta["num_docs"] for s in shards),
        "num_sentences": sum(s.meta["num_sentences"] for s in shards),
        "num_tokens": num_tokens,
        "num_entities": sum(s.meta["num_entities"] for s in shards),
        "entity_types": types,
        "bad_input": {
            **totals,
            "invalid_utf8_by_file": {p: c["invalid_utf8_bytes"] for p, c in per_file.items()
                                     if c.get("invalid_utf8_bytes")},
            "bad_record_examples": examples[:5],
            "empty_after_tokenizing": counts.get("empty_after_tokenizing", 0),
            "duplicate_documents": int(duplicates),
            "duplicates_removed": int(counts.get("duplicates_removed", 0)),
            "entities_without_tokens": counts.get("entities_without_tokens", 0),
            "entities_overlapping_dropped": counts.get("entities_overlapping_dropped", 0),
        },
        "long_documents": counts.get("long_documents", 0),
        "long_document_windows": counts.get("long_document_windows", 0),
        "window": max(1, cfg.seq_len - 2),
        "text_kept_fraction": round(counts.get("chars_kept", 0) / chars_read, 6) if chars_read else 0.0,
        "tokens_truncated": 0,
        "unk_tokens": counts.get("unk_tokens", 0),
        "unk_rate": round(counts.get("unk_tokens", 0) / max(1, num_tokens), 6),
    }
