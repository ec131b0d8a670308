#!/usr/bin/env bash
# The seq2seq evidence run (1 thread, from the repository root): a tiny T5 (recipes/t5-tiny-en.toml)
# pre-trained with t5-span for 100 steps on the shared English books, then fine-tuned on
# Multi30k en->de, pre-trained vs the same architecture from random init (--transfer-layers none),
# one seed, identical budgets. Writes docs/evidence/seq2seq/{pretrain.json,multi30k.json}.
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's sesame
RUNS=${RUNS:-runs/evidence-seq2seq}
PY=${PY:-python}
# 1. tokenizer + corpus once (recipe as written), then 100 steps reading them
[ -f "$RUNS/prep/tokenizer.json" ] || $PY -m sesame.cli.main pretrain recipes/t5-tiny-en.toml --out "$RUNS/prep" --no-progress \
    --set train.steps=1 --set train.eval_every=0 --set train.save_every=1000 --set data.workers=1
[ -f "$RUNS/t5-tiny-en/model/config.toml" ] || $PY -m sesame.cli.main pretrain recipes/t5-tiny-en.toml --out "$RUNS/t5-tiny-en" --no-progress \
    --set tokenizer.path="'$RUNS/prep/tokenizer.json'" --set data.corpus="'$RUNS/prep/corpus'" \
    --set train.steps=100 --set train.warmup=10 --set train.lr=2e-3 --set train.eval_every=50 \
    --set train.save_every=1000 --set train.log_every=10 --set data.workers=1
# 2. Multi30k en->de: pre-trained vs random init
$PY recipes/pretrained_vs_random.py "$RUNS/t5-tiny-en/model" --dataset multi30k --seeds 0 \
    --max-train 4000 --out "$RUNS/multi30k" --set train.steps=150 --set train.batch_size=32 \
    --set train.lr=1e-3 --set task.max_target_length=32 --set task.max_length=48
$PY - "$RUNS" <<'PY'
import json, sys
from pathlib import Path
runs = Path(sys.argv[1])
out = Path("docs/evidence/seq2seq")
lines = [json.loads(x) for x in (runs / "t5-tiny-en" / "metrics.jsonl").read_text().splitlines()]
train = [x for x in lines if "loss" in x and x.get("event") != "eval"]
evals = [x for x in lines if x.get("event") == "eval"]
(out / "pretrain.json").write_text(json.dumps({
    "recipe": "recipes/t5-tiny-en.toml", "steps": train[-1]["step"], "first_logged": train[0], "last_logged": train[-1],
    "evals": evals, "threads": 1}, indent=2))
(out / "multi30k.json").write_text((runs / "multi30k" / "results.json").read_text())
PY
# Measured on 2026-12-02 on the shared 2-core machine (8 helpers; 1 thread here): pre-training
# 548 s for 100 steps, fine-tuning 417 s (pre-trained) and 259 s (random init) for 150 steps each.
