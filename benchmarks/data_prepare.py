"""Benchmark: `sesame data prepare` throughput vs raw `tokenizers` encode_batch.

Prepares every text/JSONL file under ../shared/data/corpora/en with 2 worker
processes (reading, sentence splitting, word starts, shard writing, duplicate
hashing included), and times the bare Rust tokenizer (`encode_batch` on the same
documents, all threads) as the practical limit. MB/s are input megabytes per second
of wall time; CPU seconds (this process, its threads and worker processes) are shown
too, since wall time on a shared machine depends on what else runs.

    python benchmarks/data_prepare.py [--corpus DIR] [--workers 2] [--repeat 3] \
        [--json docs/evidence/data-prepare/results.json]

The numbers and the setting (command, versions, load average) go to ``--json``.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evidence import EVIDENCE, context, save  # noqa: E402

from sesame.config import DataConfig  # noqa: E402
from sesame.data import prepare  # noqa: E402
from sesame.data.read import read_piece, resolve_inputs  # noqa: E402
from sesame.tokenize import load_tokenizer, train_tokenizer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _cpu() -> float:
    """CPU seconds used so far by this process, its threads and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(SHARED / "corpora" / "en"))
    ap.add_argument("--tokenizer", help="a tokenizer to use (default: WordPiece 8k trained on gutenberg)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="best of N interleaved runs for each side")
    ap.add_argument("--json", default=str(EVIDENCE / "data-prepare" / "results.json"), help="where the numbers go")
    args = ap.parse_args()
    setting = context()
    if not Path(args.corpus).is_dir():
        print(f"corpus {args.corpus} is absent; nothing to measure")
        return 1
    work = Path(tempfile.mkdtemp(prefix="sesame-bench-"))
    try:
        if args.tokenizer:
            tok = load_tokenizer(args.tokenizer)
        else:
            tok = train_tokenizer(SHARED / "corpora" / "en" / "gutenberg", kind="wordpiece", vocab_size=8000)
        cfg = DataConfig(workers=args.workers)
        files, _ = resolve_inputs([args.corpus], cfg)
        docs = [d.text for f in files for d in read_piece(f, 0, f.size, cfg, Counter())]
        size = sum(f.size for f in files) / 1e6
        text_mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6

        prep, raw, prep_cpu, raw_cpu = [], [], [], []
        for r in range(args.repeat):  # interleaved, best of N: robust to other load on the machine
            out = work / f"run{r}"
            c0, t0 = _cpu(), time.perf_counter()
            meta = prepare([args.corpus], tok, out, cfg, progress=False)
            prep.append(time.perf_counter() - t0)
            prep_cpu.append(_cpu() - c0)
            shutil.rmtree(out)
            c0, t0 = _cpu(), time.perf_counter()
            encs = tok.backend.encode_batch(docs, add_special_tokens=False)
            raw.append(time.perf_counter() - t0)
            raw_cpu.append(_cpu() - c0)
        n_raw = sum(len(e.ids) for e in encs)
        best_prep, best_raw = min(prep), min(raw)
        print(f"corpus: {args.corpus}: {len(files)} files, {size:.1f} MB on disk, {len(docs):,} documents, "
              f"{text_mb:.1f} MB of text; load average before: {os.getloadavg()[0]:.1f}")
        print(f"tokenizer: {tok.kind}, {tok.vocab_size} tokens")
        print(f"sesame data prepare ({args.workers} workers): {size / best_prep:6.2f} MB/s  "
              f"({best_prep:.1f} s wall, {min(prep_cpu):.1f} s CPU, {meta['num_tokens']:,} tokens, "
              f"{meta['num_docs']:,} docs)")
        print(f"raw tokenizers encode_batch:          {size / best_raw:6.2f} MB/s  "
              f"({best_raw:.1f} s wall, {min(raw_cpu):.1f} s CPU, {n_raw:,} tokens)")
        print(f"ratio (wall time): {100 * best_raw / best_prep:.0f}% of raw (goal >= 70%)")
        print(f"ratio (CPU time, insensitive to other load): {100 * min(raw_cpu) / min(prep_cpu):.0f}% of raw")
        if meta["num_tokens"] != n_raw:
            print(f"note: token counts differ by {meta['num_tokens'] - n_raw:+,}")
        save(args.json, setting, {
            "corpus": os.path.relpath(args.corpus, ROOT), "files": len(files), "mb_on_disk": size,
            "documents": len(docs), "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size},
            "workers": args.workers, "repeat": args.repeat,
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "all"),
            "prepare": {"mb_per_s": size / best_prep, "wall_s": prep, "cpu_s": prep_cpu,
                        "tokens": meta["num_tokens"], "docs": meta["num_docs"]},
            "raw_encode_batch": {"mb_per_s": size / best_raw, "wall_s": raw, "cpu_s": raw_cpu, "tokens": n_raw},
            "wall_ratio_of_raw": best_raw / best_prep, "cpu_ratio_of_raw": min(raw_cpu) / min(prep_cpu)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
