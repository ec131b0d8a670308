"""Feature-based transfer (issue 16): ELMo-tiny features vs static word2vec vectors vs the
tiny BERT's features, each frozen under the SAME task model (a BiLSTM of 64 units per
direction over the features + a 32-wide task embedding of its own), on SST-2 and
CoNLL-2003, two seeds each. ELMo and BERT are read through the scalar mix of their
layers, each layer-normalised first (character/embedding layer + both layers); word2vec
has one layer. One JSON per run under docs/evidence/elmo/ (a run already measured is
skipped), the pre-training facts in pretrain.json, and the Markdown table in
docs/evidence/elmo/table.md.

    python recipes/elmo_transfer.py --steps 200 --seeds 0 1

The three feature models come first, one command each, on the same books (the inputs of
recipes/bert-tiny-en.toml) and the same WordPiece tokenizer for the two contextual ones;
the BERT run gets the ELMo run's schedule (400 steps, 50 warm-up, linear) in fp32, which on
this CPU costs about the ELMo run's CPU seconds (both are recorded in pretrain.json):

    sesame pretrain recipes/elmo-tiny-en.toml --out runs/elmo-tiny-en
    sesame pretrain recipes/bert-tiny-en.toml --out runs/bert-tiny-en-matched \\
        --set tokenizer.path=runs/elmo-tiny-en/tokenizer.json --set train.steps=400 --set train.warmup=50 \\
        --set train.precision=fp32 --set train.threads=1 --set train.eval_every=100 --set train.save_every=100
    sesame static train <the same books> --method word2vec --arch sg --dim 128 --epochs 1 \\
        --set static.shared_negatives=64 --set static.punctuation=true --threads 1 --out runs/w2v-books"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "evidence" / "elmo"
RUNS = ROOT / "runs"
FEATURES = {  # name -> (model path, scalar mix)
    "elmo-tiny": (RUNS / "elmo-tiny-en" / "model", True),
    "word2vec": (RUNS / "w2v-books" / "vectors.bin", False),
    "bert-tiny": (RUNS / "bert-tiny-en-matched" / "model", True),
}
# the usual alternative, one flag apart: the same BERT fine-tuned whole with its own linear head
FULL = {"bert-tiny full fine-tune": RUNS / "bert-tiny-en-matched" / "model"}
TASKS = {"sst2": ("accuracy", 8000), "conll2003": ("f1", 8000)}
MAX_EVAL = 1000  # dev (and test) examples scored per run, a fixed-seed subset
TASK_MODEL = {"kind": "frozen", "task_encoder": "bilstm", "task_hidden": 64, "task_embedding": 32,
              "task_dropout": 0.2}


def pretrain_facts() -> dict:
    """Steps, wall time and the last held-out loss/perplexity of each pre-training run."""
    out = {}
    for name, run in (("elmo-tiny", "elmo-tiny-en"), ("bert-tiny", "bert-tiny-en-matched")):
        rows = [json.loads(x) for x in (RUNS / run / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in rows if "loss" in r and r.get("event") is None]
        evals = [r for r in rows if r.get("event") == "eval"]
        log = RUNS / f"{run}.log"  # the pre-training command's `/usr/bin/time -v` report, when it was run so
        cpu = [float(x.split(":")[1]) for x in log.read_text().splitlines() if "User time (seconds)" in x] \
            if log.is_file() else []
        out[name] = {"run": f"runs/{run}", "steps": train[-1]["step"], "elapsed_s": train[-1]["elapsed"],
                     "cpu_user_s": cpu[0] if cpu else None,
                     "tokens_per_s": train[-1]["tokens_per_s"], "final_train_loss": train[-1]["loss"],
                     "held_out": {k: evals[-1][k] for k in ("step", "eval_loss", "eval_ppl", "eval_accuracy")}}
        out[name]["layer_token_cosine"] = token_cosine(RUNS / run / "model")
    summary = json.loads((RUNS / "w2v-books" / "summary.json").read_text())
    out["word2vec"] = {"run": "runs/w2v-books", **{k: summary[k] for k in summary if k != "config"}}
    return out


@torch.no_grad()
def token_cosine(model_dir: Path, n: int = 50) -> list[float]:
    """Per hidden layer (token layer first), the mean cosine between the layer-normalised
    vectors of different tokens of a sentence, over the first ``n`` SST-2 dev sentences:
    near 1 means the layer hardly depends on its input."""
    import torch.nn.functional as F

    from sesame.finetune import read_split
    from sesame.pipelines import load_any

    model, tok, _ = load_any(model_dir)
    totals = None
    for ex in read_split("sst2", "dev").examples[:n]:
        ids = torch.tensor([tok.build_inputs(tok.encode(ex.text).ids[:60])[0]])
        values = []
        for h in model(ids, output_hidden_states=True).hidden_states:
            c = F.normalize(F.layer_norm(h[0], h.shape[-1:]), dim=-1)
            k = len(c)
            values.append(float(((c @ c.T).sum() - k) / (k * (k - 1))))
        totals = values if totals is None else [a + b for a, b in zip(totals, values)]
    return [round(v / n, 4) for v in totals]


def run_one(feature: str, task: str, seed: int, steps: int) -> dict:
    from sesame.finetune import finetune

    metric, max_train = TASKS[task]
    if feature in FULL:
        path, strategy, lr = FULL[feature], {"kind": "full"}, 5e-4
    else:
        path, mix = FEATURES[feature]
        strategy, lr = {**TASK_MODEL, "scalar_mix": mix, "scalar_mix_norm": mix}, 2e-3
    train = {"steps": steps, "batch_size": 32, "lr": lr, "warmup": steps // 10, "seed": seed, "threads": 1,
             "log_every": 50}
    start = time.perf_counter()
    run = RUNS / "elmo-transfer" / f"{feature.replace(' ', '-')}-{task}-s{seed}"
    summary = finetune(path, task, run, train, strategy=strategy, max_train=max_train, max_eval=MAX_EVAL,
                       progress=False, say=lambda s: None)
    dev = summary["eval"]["dev"]["metrics"]
    test = (summary["eval"].get("test") or {}).get("metrics")
    return {"features": feature, "task": task, "seed": seed, "metric": metric, "dev": dev, "test": test,
            "model": str(path.relative_to(ROOT)), "strategy": strategy, "train": train, "max_train": max_train,
            "max_eval": MAX_EVAL, "trainable": summary["trainable"], "seconds": round(time.perf_counter() - start, 1)}


def table(results: list[dict], facts: dict) -> str:
    lines = ["| features | SST-2 dev acc (mean ± sd) | CoNLL-2003 dev F1 | CoNLL-2003 test F1 | trainable params |",
             "|---|---|---|---|---|"]
    for feature in [*FEATURES, *FULL]:
        cells = []
        for task, split in (("sst2", "dev"), ("conll2003", "dev"), ("conll2003", "test")):
            vals = [r[split][TASKS[task][0]] for r in results if r["features"] == feature and r["task"] == task
                    and r[split]]
            if not vals:
                cells.append("n/a")
                continue
            mean = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1))
            cells.append(f"{mean:.3f} ± {sd:.3f} (n={len(vals)})")
        params = next((r["trainable"]["trainable"] for r in results if r["features"] == feature), None)
        lines.append(f"| {feature} | " + " | ".join(cells) + (f" | {params:,} |" if params else " | n/a |"))
    e, b = facts["elmo-tiny"], facts["bert-tiny"]
    lines += ["", f"ELMo-tiny: {e['steps']} steps, {e['elapsed_s']:.0f} s of training, {e['cpu_user_s']} CPU s in "
                  f"all, held-out biLM perplexity {e['held_out']['eval_ppl']:.1f}; BERT-tiny: {b['steps']} steps, "
                  f"{b['elapsed_s']:.0f} s, {b['cpu_user_s']} CPU s, held-out MLM perplexity "
                  f"{b['held_out']['eval_ppl']:.1f} (not comparable: masked vs next-token)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--features", nargs="+", default=[*FEATURES, *FULL])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    facts = pretrain_facts()
    (OUT / "pretrain.json").write_text(json.dumps(facts, indent=2) + "\n")
    for seed in args.seeds:
        for task in args.tasks:
            for feature in args.features:
                file = OUT / f"{feature.replace(' ', '-')}-{task}-s{seed}.json"
                if file.is_file():
                    continue
                result = run_one(feature, task, seed, args.steps)
                file.write_text(json.dumps(result, indent=2, default=str) + "\n")
                print(feature, task, seed, result["dev"][result["metric"]], f"{result['seconds']} s", flush=True)
    results = [json.loads(f.read_text()) for f in sorted(OUT.glob("*-s*.json"))]
    (OUT / "table.md").write_text(table(results, facts))
    print((OUT / "table.md").read_text())


if __name__ == "__main__":
    main()
