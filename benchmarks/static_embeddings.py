"""Benchmark: sesame's word2vec (SG, CBOW), fastText and GloVe against gensim's Word2Vec
and FastText on the same encoded corpus, with the same dimensions, window, epochs,
negatives, subsampling and learning rate, and the same number of workers (`--workers`:
sesame's processes, gensim's threads).

The corpus is read and split into words once (``sesame.static.corpus``); gensim gets the
same word lists (documents cut at 10,000 words, gensim's limit), so both sides train on
identical tokens; ``--workers N`` gives both sides N workers, ``--repeats R``
runs every row R times interleaved (seeds seed..seed+R-1). Words/s count corpus words x
epochs over the training time (gensim's ``train`` call; sesame's chunks; GloVe: co-occurrence
counting plus its epochs); reading
and vocabulary building are excluded on both sides. Each row is evaluated by
``sesame.static.evaluate`` (Spearman rho on every similarity set, analogy accuracy over
the 30,000 most frequent words). Rows can be run separately (``--rows``); each row's JSON
lands in ``--out`` and the table (``table.md``) is rebuilt from every row there.

    python benchmarks/static_embeddings.py --rows sesame-sg gensim-sg --epochs 1 --fraction 1.0
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sesame.static.config import StaticConfig  # noqa: E402
from sesame.static.corpus import Corpus, Vocab, build_corpus  # noqa: E402
from sesame.static.evaluate import evaluate  # noqa: E402
from sesame.static.train import train_corpus  # noqa: E402
from sesame.static.vectors import Vectors, load_vectors  # noqa: E402

ROWS = ("sesame-sg", "sesame-sg-shared", "gensim-sg", "sesame-cbow", "sesame-cbow-shared", "gensim-cbow",
        "sesame-fasttext", "sesame-fasttext-shared", "gensim-fasttext", "sesame-glove")
MIN_PAIRS = 50
SETS = ("EN-WS-353-ALL", "EN-SIMLEX-999", "EN-MEN-TR-3k", "EN-RW-STANFORD")


def subset(corpus: Corpus, fraction: float, min_count: int) -> Corpus:
    """Every k-th document (k = round(1 / fraction)), so every source of the corpus is in
    it, with the vocabulary counted again on them (``min_count``): no word without examples."""
    if fraction >= 1.0:
        return corpus
    k = max(1, round(1 / fraction))
    ndocs = len(corpus.doc_starts) - 1
    doc = np.searchsorted(corpus.doc_starts[1:], np.arange(corpus.words), side="right")
    ids = corpus.ids[doc % k == 0]
    doc = doc[doc % k == 0] // k
    counts = np.bincount(ids, minlength=len(corpus.vocab))
    order = np.argsort(-counts, kind="stable")
    keep = order[counts[order] >= min_count]
    remap = np.full(len(counts), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    mapped = remap[ids]
    lens = np.bincount(doc[mapped >= 0], minlength=-(-ndocs // k))
    vocab = Vocab([corpus.vocab.words[i] for i in keep], counts[keep].astype(np.int64))
    return Corpus(vocab, mapped[mapped >= 0].astype(np.int32), np.concatenate([[0], np.cumsum(lens)]))


def gensim_row(kind: str, corpus: Corpus, args, seed: int) -> tuple[Vectors, float]:
    from gensim.models import FastText, Word2Vec

    words = corpus.vocab.words
    sents = []
    for a, b in zip(corpus.doc_starts[:-1].tolist(), corpus.doc_starts[1:].tolist()):
        for s in range(a, b, 10_000):
            sents.append([words[i] for i in corpus.ids[s:min(b, s + 10_000)]])
    common = dict(vector_size=args.dim, window=args.window, min_count=1, negative=args.negative, sample=args.sample,
                  alpha=args.lr, min_alpha=0.0001, workers=args.workers, seed=seed, hs=0)
    if kind == "fasttext":
        model = FastText(sg=1, min_n=3, max_n=6, bucket=args.buckets, **common)
    else:
        model = Word2Vec(sg=int(kind == "sg"), **common)
    model.build_vocab(sents)
    start = time.perf_counter()
    model.train(sents, total_examples=len(sents), epochs=args.epochs)
    secs = time.perf_counter() - start
    kv = model.wv
    return Vectors(list(kv.index_to_key), kv.vectors), secs


def sesame_row(kind: str, corpus: Corpus, args, work: Path, seed: int) -> tuple[Vectors, float, dict]:
    common = dict(dim=args.dim, window=args.window, epochs=args.epochs, seed=seed, min_count=1)
    if kind == "glove":
        cfg = StaticConfig(method="glove", lr=0.05, **common)
    else:
        base = kind.split("-")[0]
        cfg = StaticConfig(method="fasttext" if base == "fasttext" else "word2vec", arch="cbow" if base == "cbow"
                           else "sg", negative=args.negative, sample=args.sample, lr=args.lr, buckets=args.buckets,
                           batch=args.batch, shared_negatives=args.shared if kind.endswith("shared") else 0,
                           workers=args.workers, **common)
    out = work / f"sesame-{kind}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    summary = train_corpus(corpus, cfg, out, progress=args.progress)
    secs = summary["train_seconds"] + summary.get("count_seconds", 0.0)
    return in_vocabulary(load_vectors(out)), secs, summary


def in_vocabulary(vec: Vectors) -> Vectors:
    """The vocabulary's vectors only: fastText's n-gram answers for unseen words are left out,
    so every row scores the same pairs (gensim's rows are exported without them too)."""
    return Vectors(vec.words, vec.matrix, vec.counts)


def scores(vec: Vectors, data: Path) -> dict:
    r = evaluate(vec, data / "wordsim" / "eval-word-vectors", data / "wordsim" / "questions-words.txt")
    sims = {k: {"rho": round(v["rho"], 4), "oov": v["oov"], "pairs": v["pairs"]} for k, v in r["similarity"].items()}
    ana = {k: {f: v[f] for f in ("acc_add", "acc_mul", "answered", "questions")} for k, v in r["analogy"].items()}
    return {"similarity": sims, "analogy": ana}


def table(out: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("row-*.json"))]
    for r in rows:  # older rows: one measurement
        r.setdefault("runs", [{"words_per_second": r["words_per_second"], "scores": r["scores"]}])
    rows.sort(key=lambda r: ROWS.index(r["row"]) if r["row"] in ROWS else 99)
    speed = {r["row"]: r["words_per_second"] for r in rows}
    if not rows:
        return ""
    first = rows[0]["scores"]["similarity"]
    big = [k for k, v in first.items() if v["pairs"] - v["oov"] >= MIN_PAIRS]
    head = ("| row | " + " | ".join(f"{s.replace('EN-', '')} ({first[s]['pairs'] - first[s]['oov']})" for s in SETS) +
            f" | mean ρ ({len(big)} sets) | analogy 3CosAdd | 3CosMul | answered | epochs | batch"
            " | words/s (runs) | vs gensim |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        runs = r["runs"]
        sims = [x["scores"]["similarity"] for x in runs]
        mean = np.mean([[x[k]["rho"] for k in big] for x in sims], 1)
        ana = [x["scores"]["analogy"]["all"] for x in runs]
        kind = r["row"].split("-")[1]
        ref = speed.get(f"gensim-{kind}") or (speed.get("gensim-sg") if kind == "glove" else None)
        ratio = f"{r['words_per_second'] / ref:.2f}×" if ref and r["row"].startswith("sesame") else ""
        spread = " / ".join(f"{x['words_per_second']:,.0f}" for x in runs)
        batch = f"{r['settings']['batch']:,}" if r["row"].startswith("sesame") else "—"

        def pm(v):
            return f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")

        lines.append(f"| {r['row']} | " + " | ".join(pm([x[s]["rho"] for x in sims]) for s in SETS) +
                     f" | {pm(mean)} | {pm([a['acc_add'] for a in ana])} | {pm([a['acc_mul'] for a in ana])} | "
                     f"{ana[0]['answered']} | {r['settings']['epochs']} | {batch} | {spread} | {ratio} |")
    note = (f"\nSimilarity columns: Spearman ρ (scored pairs in brackets); the mean is over the sets with at "
            f"least {MIN_PAIRS} scored pairs ({', '.join(s.replace('EN-', '') for s in big)}). Vocabulary "
            f"{rows[0]['vocab']:,} words, {rows[0]['corpus_words']:,} training words per epoch.\n")
    return "\n".join(lines) + "\n" + note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    p.add_argument("--work", default="/tmp/sesame-static-bench", help="scratch folder (corpus cache, runs)")
    p.add_argument("--out", default=str(ROOT / "docs" / "evidence" / "static"))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--fraction", type=float, default=1.0, help="train on the first fraction of the documents")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--buckets", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=1024, help="sesame: examples per update, in flight across all workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes (sesame) / threads (gensim)")
    p.add_argument("--shared", type=int, default=16, help="noise words per batch of the *-shared rows")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure every row this many times, interleaved (seed, seed + 1, ...); words/s is the mean")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--rescore", action="store_true",
                   help="re-evaluate the saved sesame rows' vectors (in-vocabulary) without training again")
    args = p.parse_args()
    torch.set_num_threads(1)  # intra-op; --workers threads run chunk parts at once
    data, work, out = Path(args.data), Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    full = build_corpus([str(data / "corpora" / "en")], StaticConfig(min_count=args.min_count),
                        work / f"corpus-en-min{args.min_count}")
    corpus = subset(full, args.fraction, args.min_count)
    print(f"corpus: {full.words:,} words, {len(full.vocab):,} types (min_count {args.min_count}); training on "
          f"{corpus.words:,} ({time.perf_counter() - start:.0f} s to read)", flush=True)
    for row in args.rows if args.rescore else ():
        path = out / f"row-{row}.json"
        if row.startswith("sesame") and path.is_file():
            result = json.loads(path.read_text())
            result["scores"] = scores(in_vocabulary(load_vectors(work / row)), data)
            result["rescored"] = " ".join(sys.argv)
            path.write_text(json.dumps(result, indent=1))
    results: dict[str, dict] = {}
    for rep in range(args.repeats) if not args.rescore else ():
        for row in args.rows:  # interleaved: every row once per repeat
            side, kind = row.split("-", 1)
            extra = {}
            if side == "gensim":
                vec, secs = gensim_row(kind, corpus, args, args.seed + rep)
            else:
                vec, secs, extra = sesame_row(kind, corpus, args, work, args.seed + rep)
            run = {"seed": args.seed + rep, "train_seconds": round(secs, 2),
                   "words_per_second": round(args.epochs * corpus.words / secs, 1), "scores": scores(vec, data),
                   "summary": extra}
            result = results.setdefault(row, {
                "row": row, "corpus_words": corpus.words, "fraction": args.fraction, "vocab": len(vec),
                "settings": {k: v for k, v in vars(args).items() if k not in ("rows", "progress", "work", "out")},
                "command": " ".join(sys.argv), "runs": []})
            result["runs"].append(run)
            result.update(train_seconds=run["train_seconds"] if rep == 0 else result["train_seconds"],
                          words_per_second=round(float(np.mean([x["words_per_second"] for x in result["runs"]])), 1),
                          scores=result["runs"][0]["scores"], summary=result["runs"][0]["summary"])
            (out / f"row-{row}.json").write_text(json.dumps(result, indent=1))
            print(f"{row} (seed {run['seed']}): {run['words_per_second']:,.0f} words/s, "
                  f"WS353 {run['scores']['similarity']['EN-WS-353-ALL']['rho']:.3f}, analogy "
                  f"{run['scores']['analogy']['all']['acc_add']:.3f}", flush=True)
    (out / "table.md").write_text(table(out))
    print(table(out))


if __name__ == "__main__":
    main()
