"""Resume after SIGKILL continues the same run: same data order, same losses, bit for bit."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from safetensors.torch import load_file
from test_train import CHILD

from sesame.train import find_resumable, read_metrics

TRAIN = dict(steps=14, batch_size=8, micro_batch_size=4, save_every=3, keep=2, deterministic=True, threads=1,
             optimizer="adamw", lr=1e-2, schedule="linear", warmup=2, clip=1.0, weight_decay=0.01)


def child(run_dir, **extra) -> list[str]:
    args = {"run_dir": str(run_dir), "train": TRAIN, "dropout": 0.1, **extra}
    return [sys.executable, "-c", CHILD, json.dumps(args)]


def summary_of(stdout: str) -> dict:
    line = [x for x in stdout.splitlines() if x.startswith("SUMMARY ")][-1]
    return json.loads(line[len("SUMMARY "):])


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "event" not in r}


def test_killed_and_resumed_run_matches_the_uninterrupted_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    # the uninterrupted run and the run to be killed go side by side (2 cores)
    full = subprocess.Popen(child(tmp_path / "full", params=str(tmp_path / "full.safetensors")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    kill_at = random.randint(TRAIN["save_every"] + 1, TRAIN["steps"] - 2)
    run = tmp_path / "run"
    proc = subprocess.Popen(child(run, delay=0.05), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and max(losses(run), default=0) < kill_at:
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before step {kill_at}: {proc.communicate()[1].decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, err = full.communicate(timeout=120)
    assert full.returncode == 0, err
    expected = losses(tmp_path / "full")
    assert sorted(expected) == list(range(1, TRAIN["steps"] + 1))
    killed = losses(run)
    path, _, _ = find_resumable(run / "checkpoints")
    saved = int(path.name.split("-")[1])
    assert saved >= TRAIN["save_every"] and max(killed) >= saved, (kill_at, saved, max(killed))

    resumed = subprocess.run(child(run, resume=True, params=str(tmp_path / "resumed.safetensors")),
                             capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = summary_of(resumed.stdout)
    assert summary["start_step"] == saved and summary["first_batch_step"] == saved  # 0-based: step saved+1
    after = {s: v for s, v in losses(run).items() if s > saved}
    assert min(after) == saved + 1
    combined = {**{s: v for s, v in killed.items() if s <= saved}, **after}
    assert combined == expected, (kill_at, saved)  # exact float equality, every step
    a, b = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
