"""The static-feature baseline on ChnSentiCorp (issue 16): Chinese word2vec vectors, trained
on jieba words of the shared Chinese corpora, frozen under the same task model that
recipes/elmo_transfer.py puts over English features (a BiLSTM of 64 units per direction +
a 32-wide task embedding), fine-tuned with the budget of the Chinese objective study
(recipes/compare/objectives-zh.toml: 800 steps x 32, at most 128 tokens), two seeds, scored
on the whole dev and test sets. One JSON per run in docs/evidence/static-zh/ (a run
already measured is skipped) and the table in docs/evidence/static-zh/table.md.

    python recipes/static_zh_transfer.py --seeds 0 1

The vectors come first (about 3 minutes here):

    sesame static train ../shared/data/corpora/zh/cluecorpus-small-sample/CLUECorpusSmall_sampled.txt \\
        ../shared/data/corpora/zh/peoples-daily-1998/199801_pos_tagged.txt --method word2vec --arch sg \\
        --dim 128 --epochs 5 --set static.segmenter=jieba --set static.punctuation=true \\
        --set static.shared_negatives=64 --threads 1 \\
        --out runs/w2v-zh"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "evidence" / "static-zh"
VECTORS = ROOT / "runs" / "w2v-zh"
TASK_MODEL = {"kind": "frozen", "task_encoder": "bilstm", "task_hidden": 64, "task_embedding": 32,
              "task_dropout": 0.2}
STUDY = ROOT / "docs" / "evidence" / "objectives-zh" / "results.json"


def coverage() -> dict:
    """Share of ChnSentiCorp train tokens (jieba words, punctuation included) the vectors know."""
    from sesame.finetune import read_split
    from sesame.pipelines import load_any

    _, tok, _ = load_any(VECTORS)
    texts = [ex.text for ex in read_split("chnsenticorp", "train")]
    ids = [i for t in texts for i in tok.encode(t).ids]
    return {"train_tokens": len(ids), "known": round(1 - sum(i == tok.unk_id for i in ids) / len(ids), 4),
            "vocabulary": tok.vocab_size - 4}


def run_one(seed: int, steps: int) -> dict:
    from sesame.finetune import finetune

    train = {"steps": steps, "batch_size": 32, "lr": 2e-3, "warmup": steps // 10, "seed": seed, "threads": 1}
    start = time.perf_counter()
    summary = finetune(VECTORS, "chnsenticorp", ROOT / "runs" / f"static-zh-s{seed}", train,
                       options={"max_length": 128}, strategy=TASK_MODEL, progress=False)
    return {"features": "word2vec (jieba words)", "dataset": "chnsenticorp", "seed": seed,
            "vectors": str(VECTORS.relative_to(ROOT)), "strategy": TASK_MODEL, "train": train,
            "trainable": summary["trainable"], "dev": summary["eval"]["dev"]["metrics"],
            "test": summary["eval"]["test"]["metrics"],
            "seconds": round(time.perf_counter() - start, 1)}


def table(rows: list[dict], facts: dict) -> str:
    import statistics as st

    def ms(xs):
        xs = [100 * x for x in xs]
        return f"{st.mean(xs):.2f} ± {st.stdev(xs) if len(xs) > 1 else 0:.2f}"

    lines = ["# Static features on ChnSentiCorp", "",
             "Made by `python recipes/static_zh_transfer.py --seeds 0 1`; the runs are the JSON files here.", "",
             "| features (task model) | dev accuracy | test accuracy | seeds |", "|---|---:|---:|---:|",
             f"| word2vec SG, frozen (BiLSTM task model) | {ms([r['dev']['accuracy'] for r in rows])} | "
             f"{ms([r['test']['accuracy'] for r in rows])} | {len(rows)} |"]
    if STUDY.is_file():  # the Transformers of the same fine-tuning budget, from the objective study
        rows_zh = json.loads(STUDY.read_text())["finetune"]["chnsenticorp"]["rows"]
        for arm, cells in rows_zh.items():
            name = arm if arm == "random init" else f"{arm} pre-training"
            lines.append(f"| BERT-tiny-zh, {name}, fine-tuned whole | "
                         f"{ms([c['scores']['dev']['accuracy'] for c in cells])} | "
                         f"{ms([c['scores']['test']['accuracy'] for c in cells])} | {len(cells)} |")
    w = facts["vectors"]
    lines += ["", f"Vectors: {w['corpus_words']:,} training words per epoch × {w['epochs']} epochs, "
                  f"{facts['coverage']['vocabulary']:,} words; {100 * facts['coverage']['known']:.1f} % of "
                  f"ChnSentiCorp's train tokens have a vector (the rest, punctuation included, read [UNK])."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=800)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    summary = json.loads((VECTORS / "summary.json").read_text())
    facts = {"vectors": {"run": "runs/w2v-zh", **{k: summary[k] for k in ("corpus_words", "epochs", "vocab",
                                                                         "words_per_second")}},
             "coverage": coverage()}
    (OUT / "vectors.json").write_text(json.dumps(facts, indent=1))
    rows = []
    for seed in args.seeds:
        path = OUT / f"word2vec-chnsenticorp-s{seed}.json"
        if not path.is_file():
            result = run_one(seed, args.steps)
            path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
            print(f"seed {seed}: dev {result['dev']['accuracy']:.4f} test {result['test']['accuracy']:.4f}")
        rows.append(json.loads(path.read_text()))
    (OUT / "table.md").write_text(table(rows, facts))
    print((OUT / "table.md").read_text())


if __name__ == "__main__":
    main()
