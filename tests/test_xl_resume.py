"""A recurrent (Transformer-XL) run killed with SIGKILL after a checkpoint and resumed in a
new process gives the uninterrupted run's losses exactly, and its weights and memory bank
bit for bit."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.torch import load_file

from sesame.train import find_resumable, read_metrics

TRAIN = dict(steps=12, batch_size=4, micro_batch_size=2, lr=3e-3, warmup=1, log_every=1, save_every=3, keep=2,
             device="cpu", threads=1, deterministic=True, clip=1.0)
CHILD = ("import sys; sys.path.insert(0, {tests!r}); import test_xl_resume; test_xl_resume.child_main()"
         .format(tests=os.path.dirname(os.path.abspath(__file__))))


def train(run_dir, resume=False, delay=0.0, params=None) -> dict:
    """Train the tiny xl-clm run (dropout on, so the RNG state matters too); save its state."""
    import torch
    from safetensors.torch import save_file

    from sesame.config.model import ModelConfig
    from sesame.config.train import TrainConfig
    from sesame.data.streams import SegmentStreams
    from sesame.objectives import Vocab
    from sesame.objectives.xl_clm import XLCLM
    from sesame.train import Trainer
    from sesame.train.checkpoint import split_shared

    torch.set_num_threads(1)
    model = ModelConfig.from_dict(dict(arch="decoder", heads=["lm"], vocab_size=37, hidden=16, num_heads=2,
                                       layers=2, intermediate=24, position="none", attention="xl",
                                       type_vocab_size=0, dropout=0.1, attention_dropout=0.1, mem_len=8))
    toks = np.random.default_rng(0).integers(0, 37, 4 * 8 * 5 + 1)  # 5 segments per stream: epochs wrap
    t = Trainer(XLCLM(Vocab(37)), model, TrainConfig.from_dict(TRAIN), SegmentStreams(toks, 4, 8), run_dir,
                progress=False, on_log=(lambda r: time.sleep(delay)) if delay else None)
    summary = t.fit(resume=resume)
    if params:  # weights and the training memory bank (the module's _extra_state)
        save_file({k: v.detach().contiguous() for k, v in split_shared(t.module.state_dict())[0].items()}, params)
    t.close()
    return summary


def child_main() -> None:
    summary = train(**json.loads(sys.argv[1]))
    print("SUMMARY " + json.dumps(summary))


def child(run_dir, **extra) -> list[str]:
    return [sys.executable, "-c", CHILD, json.dumps({"run_dir": str(run_dir), **extra})]


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "event" not in r}


def test_killed_xl_run_resumes_with_its_memories(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    kill_at = random.randint(TRAIN["save_every"] + 1, TRAIN["steps"] - 2)
    run = tmp_path / "run"
    proc = subprocess.Popen(child(run, delay=0.05), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # the uninterrupted run goes here, in this process, while the run to be killed starts (2 cores)
    train(tmp_path / "full", params=str(tmp_path / "full.safetensors"))
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and max(losses(run), default=0) < kill_at:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before step {kill_at}: {proc.communicate()[1].decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    expected = losses(tmp_path / "full")
    assert sorted(expected) == list(range(1, TRAIN["steps"] + 1))
    killed = losses(run)
    path, _, _ = find_resumable(run / "checkpoints")
    saved = int(path.name.split("-")[1])
    assert saved >= TRAIN["save_every"] and max(killed) >= saved, (kill_at, saved, max(killed))
    bank = load_file(str(path / "model.safetensors"))["_extra_state"]
    assert bank.shape == (2, 4, 8, 16) and bank.abs().sum() > 0  # the checkpoint holds the memories

    resumed = subprocess.run(child(run, resume=True, params=str(tmp_path / "resumed.safetensors")),
                             capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    after = {s: v for s, v in losses(run).items() if s > saved}
    assert min(after) == saved + 1
    combined = {**{s: v for s, v in killed.items() if s <= saved}, **after}
    assert combined == expected, (kill_at, saved)  # exact float equality, every step
    a, b = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys() and a["_extra_state"].shape == (2, 4, 8, 16)  # the memory bank, with the weights
    assert all(a[k].equal(b[k]) for k in a), [k for k in a if not a[k].equal(b[k])]
