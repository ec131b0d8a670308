"""Data parallel: two gloo ranks on CPU train exactly like one process with the same global
batch (there: two accumulated micro-batches)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from test_train import CHILD

from sesame.train import read_metrics

TRAIN = dict(steps=5, batch_size=8, micro_batch_size=4, optimizer="adamw", lr=1e-2, warmup=1,
             schedule="cosine", clip=1.0, weight_decay=0.01, save_every=5, threads=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_one_process(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base["OMP_NUM_THREADS"] = "1"

    def launch(run_dir, params, env):
        args = {"run_dir": str(run_dir), "train": TRAIN, "dropout": 0.0, "params": str(params)}
        return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    port = free_port()
    ranks = [launch(tmp_path / "ddp", tmp_path / "ddp.safetensors",
                    {**base, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for r in range(2)]
    single = launch(tmp_path / "one", tmp_path / "one.safetensors", base)
    for p in ranks + [single]:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]

    def losses(run):
        return [r["loss"] for r in read_metrics(run) if "event" not in r]

    ddp, one = losses(tmp_path / "ddp"), losses(tmp_path / "one")
    assert len(ddp) == len(one) == TRAIN["steps"]
    assert ddp == pytest.approx(one, rel=1e-6, abs=1e-6)
    assert len(set(one)) == len(one)  # it did train
    a, b = load_file(str(tmp_path / "ddp.safetensors")), load_file(str(tmp_path / "one.safetensors"))
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-6, key
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step-000005" / "state.json").read_text())
    assert state["world"] == 2 and len(state["rng"]) == 2  # every rank's RNG state is kept
