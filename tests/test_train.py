"""The generic trainer: schedules, optimizers, accumulation, precision, NaN handling,
checkpoints, evaluation and plots. Tiny tasks defined here need no sesame.models;
tests/test_train_resume.py and tests/test_train_ddp.py reuse them."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from sesame.config import TrainConfig
from sesame.errors import CheckpointError, ConfigError, SesameError
from sesame.task import Task, TaskOutput
from sesame.train import (
    ArraySource, Lamb, NonFiniteError, Trainer, find_resumable, lr_factor, param_groups, read_metrics,
)
from sesame.train.checkpoint import split_shared
from sesame.train.source import EVAL, transform_rng
from sesame.train.trainer import resolve_precision

V, T, IGNORE, MASK = 24, 8, -100, 1


class TinyModule(nn.Module):
    """Embedding -> MLP -> LM head tied to the embedding; loss summed over targets."""

    def __init__(self, dropout: float = 0.0, hidden: int = 16):
        super().__init__()
        self.emb = nn.Embedding(V, hidden)
        self.lin = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.poison = Poison()
        self.head = nn.Linear(hidden, V)
        self.head.weight = self.emb.weight  # tied: checkpoints must cope with shared storage
        self.z = nn.Parameter(torch.ones(1))
        self.seen_dtype = None

    def forward(self, batch):
        h = self.lin(self.emb(batch["input_ids"]))
        self.seen_dtype = h.dtype
        h = self.poison(self.norm(self.drop(torch.relu(h))), batch.get("poison"))
        logits = self.head(h)
        labels = batch["labels"]
        sel = labels != IGNORE
        loss = F.cross_entropy(logits[sel].float(), labels[sel], reduction="sum") + 0.0 * self.z.sum()
        if batch.get("grad_poison") is not None and bool(batch["grad_poison"].any()):
            loss = loss + torch.sqrt(self.z * 0.0).sum()  # finite forward, NaN gradient
        correct = (logits[sel].argmax(-1) == labels[sel]).sum().item()
        return TaskOutput(loss, int(sel.sum()), {"accuracy": (correct, int(sel.sum()))})


class Poison(nn.Module):
    def forward(self, h, flag):
        if flag is not None and bool(flag.any()):
            return h * float("inf")
        return h


class TinyMLM(Task):
    """Masks 30% of tokens at random (``random_mask``) or every token divisible by 3."""

    name = "tiny-mlm"

    def __init__(self, random_mask: bool = True, dropout: float = 0.0):
        self.random_mask, self.dropout = random_mask, dropout

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        mask = rng.random(ids.shape) < 0.3 if self.random_mask else ids % 3 == 0
        out = {"input_ids": torch.from_numpy(np.where(mask, MASK, ids)),
               "labels": torch.from_numpy(np.where(mask, ids, IGNORE))}
        for key in ("poison", "grad_poison"):
            if key in batch:
                out[key] = torch.as_tensor(np.asarray(batch[key]))
        return out

    def count(self, batch):
        return int((batch["labels"] != IGNORE).sum())

    def build(self, model_config):
        return TinyModule(self.dropout)


def tokens(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, V, size=(n, T))


def config(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=8, lr=1e-2, warmup=0, schedule="constant", log_every=1, clip=0.0,
                device="cpu", seed=3)
    return TrainConfig.from_dict({**base, **kw})


def trainer(tmp_path, task=None, source=None, **kw) -> Trainer:
    cfg = config(**kw)
    return Trainer(task or TinyMLM(), None, cfg, source or ArraySource(tokens(), cfg.batch_size, seed=1),
                   tmp_path, progress=False)


# ---- schedules and optimizers ---------------------------------------------
def test_lr_schedules():
    assert [lr_factor(s, "linear", 4, 12) for s in (0, 3, 4, 8, 12)] == [0.25, 1.0, 1.0, 0.5, 0.0]
    assert lr_factor(8, "cosine", 4, 12) == pytest.approx(0.5)
    assert lr_factor(4, "cosine", 4, 12) == pytest.approx(1.0)
    assert lr_factor(15, "inverse_sqrt", 4, 100) == pytest.approx(0.5)
    assert lr_factor(50, "constant", 4, 12) == 1.0


def test_param_groups_keep_decay_off_biases_norms_and_optionally_embeddings():
    m = TinyModule()
    decay, no_decay = param_groups(m, 0.1)
    assert set(decay["names"]) == {"emb.weight", "lin.weight"}  # head.weight is emb.weight: listed once
    assert {"lin.bias", "norm.weight", "norm.bias", "head.bias", "z"} == set(no_decay["names"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decay, _ = param_groups(m, 0.1, decay_embeddings=False)
    assert decay["names"] == ["lin.weight"]


def test_lamb_matches_the_papers_update():
    torch.manual_seed(0)
    w0 = torch.randn(3, 4, dtype=torch.float64)
    grads = [torch.randn(3, 4, dtype=torch.float64) for _ in range(3)]
    p = nn.Parameter(w0.clone())
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.99, 1e-6, 0.01
    opt = Lamb([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    x, m, v = w0.numpy().copy(), np.zeros((3, 4)), np.zeros((3, 4))
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.numpy()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        u = r + wd * x
        x = x - lr * np.linalg.norm(x) / np.linalg.norm(u) * u
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-6, atol=1e-12)
    assert not np.allclose(x, w0.numpy())


def test_train_config_checks_new_fields():
    with pytest.raises(ConfigError, match="train.save_every"):
        TrainConfig.from_dict({"save_every": -1})
    with pytest.raises(ConfigError, match="momentum"):
        TrainConfig.from_dict({"momentum": 1.5})
    assert TrainConfig.from_dict({"optimizer": "sgd", "momentum": 0.9}).momentum == 0.9


@pytest.mark.parametrize("optimizer", ["adamw", "lamb", "sgd"])
def test_every_optimizer_learns(tmp_path, optimizer, capsys):
    lr = {"adamw": 3e-2, "lamb": 3e-2, "sgd": 0.5}[optimizer]
    t = trainer(tmp_path, TinyMLM(random_mask=False), steps=30, optimizer=optimizer, lr=lr, momentum=0.0,
                schedule="cosine", warmup=3, clip=1.0, log_every=5)
    t.progress = optimizer == "adamw"  # also drive the tqdm bar once
    saved = []
    t.on_save = saved.append
    summary = t.fit()
    losses = [r["loss"] for r in read_metrics(tmp_path) if "event" not in r]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    assert saved == [tmp_path / "checkpoints" / "step-000030"] and summary["tokens_per_s"] > 0
    if optimizer == "adamw":
        assert "train" in capsys.readouterr().err  # the progress bar


def test_tensorboard_is_optional(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            trainer(tmp_path, tensorboard=True).fit()
    else:
        trainer(tmp_path, tensorboard=True, steps=2).fit()
        assert (tmp_path / "tensorboard").is_dir()


# ---- data -----------------------------------------------------------------
def test_array_source_parts_are_disjoint_and_independent_of_the_split():
    src = ArraySource(np.arange(40), batch_size=8, seed=5)
    one = np.concatenate([src.indices(3, m, 4, 0, 1) for m in range(4)])
    two = np.concatenate([src.indices(3, m, 2, r, 2) for r in range(2) for m in range(2)])
    assert len(set(one)) == 8 and list(one) == list(two)
    epoch = np.concatenate([src.indices(s, 0, 1, 0, 1) for s in range(5)])
    assert sorted(epoch) == list(range(40))  # one epoch visits every example once
    again = ArraySource(np.arange(40), batch_size=8, seed=5)
    assert list(again.indices(7, 1, 2, 0, 1)) == list(src.indices(7, 1, 2, 0, 1))  # pure in the step
    assert list(src.indices(5, 0, 1, 0, 1)) != list(src.indices(0, 0, 1, 0, 1))  # new epoch, new order
    rows = ArraySource([{"a": [1] * (i + 1)} for i in range(10)], batch_size=4)
    assert [len(x) for x in rows.batch(0, 0, 1, 0, 1)["a"]] == [i + 1 for i in rows.indices(0, 0, 1, 0, 1)]
    state = src.state_dict()
    fresh = ArraySource(np.arange(40), batch_size=8, seed=0)
    fresh.load_state_dict(state)
    assert list(fresh.indices(2, 0, 1, 0, 1)) == list(src.indices(2, 0, 1, 0, 1))
    with pytest.raises(SesameError, match="cannot fill"):
        ArraySource(np.arange(3), batch_size=8)


# ---- accumulation and precision ---------------------------------------------
def test_accumulation_equals_the_full_batch(tmp_path):
    task = TinyMLM(random_mask=False)
    torch.manual_seed(0)
    full = trainer(tmp_path / "a", task, optimizer="adamw", weight_decay=0.1)
    acc = trainer(tmp_path / "b", task, micro_batch_size=2, optimizer="adamw", weight_decay=0.1)
    acc.module.load_state_dict(full.module.state_dict())
    counts = [task.count(b) for b in acc.micro_batches(0)]
    assert acc.accum == 4 and len(set(counts)) > 1, counts  # micro-batches hold different target counts
    r_full, _ = full.compute_gradients(0)
    r_acc, _ = acc.compute_gradients(0)
    assert r_full.count == r_acc.count == sum(counts)
    assert r_full.loss == pytest.approx(r_acc.loss, abs=1e-6)
    for (name, a), b in zip(full.module.named_parameters(), acc.module.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=0, msg=name)
    full.optimizer.step()
    acc.optimizer.step()
    for step in range(1, 4):
        full.train_step(step)
        acc.train_step(step)
    for a, b in zip(full.module.parameters(), acc.module.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_bf16_autocast_keeps_fp32_master_weights(tmp_path):
    t = trainer(tmp_path, precision="bf16", steps=3)
    summary = t.fit()
    assert t.module.seen_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in t.module.parameters())
    assert math.isfinite(summary["loss"]) and summary["steps"] == 3


def test_auto_precision_is_bf16_only_on_native_hardware(tmp_path, monkeypatch, capsys):
    from sesame.train import trainer as trainer_module

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device, native=native: native)
        assert resolve_precision("auto", cpu) == want
        t = trainer(tmp_path / want, precision="auto", steps=1)
        t.fit()
        assert t.module.seen_dtype == (torch.bfloat16 if native else torch.float32)
        assert f"train.precision = auto: {want} on cpu" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="train.precision"):
        config(precision="fp16")


# ---- NaN / Inf ----------------------------------------------------------------
def poisoned(key: str, step: int, part: int):
    data = tokens()
    flags = np.zeros(len(data), dtype=bool)
    src = ArraySource({"input_ids": data, key: flags}, batch_size=8, seed=1)
    flags[src.indices(step, part, 4, 0, 1)[0]] = True
    return src


def test_nan_stop_names_step_micro_batch_and_first_module(tmp_path):
    t = trainer(tmp_path, source=poisoned("poison", 2, 1), micro_batch_size=2)
    with pytest.raises(NonFiniteError, match=r"step 3, micro-batch 1: module `poison`"):
        t.fit()
    events = [r for r in read_metrics(tmp_path) if r.get("event") == "nonfinite"]
    assert events[0]["module"] == "poison" and events[0]["micro"] == 1


def test_nan_gradient_is_reported_by_parameter(tmp_path):
    t = trainer(tmp_path, source=poisoned("grad_poison", 1, 3), micro_batch_size=2)
    with pytest.raises(NonFiniteError, match=r"step 2, micro-batch 3: .*gradients of z"):
        t.fit()


def test_nan_skip_policy_skips_the_update_and_counts_it(tmp_path):
    t = trainer(tmp_path, source=poisoned("poison", 2, 0), micro_batch_size=2, nan_policy="skip")
    before = {}

    def on_log(record):
        if record["step"] == 2:
            before.update({k: v.clone() for k, v in t.module.state_dict().items()})
        if record["step"] == 3:
            for k, v in t.module.state_dict().items():
                torch.testing.assert_close(v, before[k], atol=0, rtol=0)  # step 3 changed nothing

    t.on_log = on_log
    summary = t.fit()
    assert summary["skipped_steps"] == 1 and summary["steps"] == 6 and math.isfinite(summary["loss"])
    assert before
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records if r.get("event") == "nonfinite"] == [3]
    assert [r for r in records if "event" not in r][-1]["skipped_steps"] == 1


# ---- checkpoints ----------------------------------------------------------------
def test_tied_tensors_are_stored_once():
    tensors, aliases = split_shared(TinyModule().state_dict())
    assert aliases == {"head.weight": "emb.weight"} and "head.weight" not in tensors


def test_checkpoints_keep_last_k_and_resume_skips_broken_ones(tmp_path):
    t = trainer(tmp_path, steps=6, save_every=2, keep=2)
    summary = t.fit()
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-000004", "step-000006"]
    assert summary["checkpoint"] == str(ckpts / "step-000006")
    with safe_open(str(ckpts / "step-000006" / "model.safetensors"), "pt") as f:
        assert "head.weight" not in f.keys() and json.loads(f.metadata()["aliases"]) == {"head.weight": "emb.weight"}
    state = json.loads((ckpts / "step-000006" / "state.json").read_text())
    assert state["step"] == 6 and state["complete"] and isinstance(state["rng"][0]["torch"], str)
    assert set(state["data"]) >= {"seed", "epoch"} and state["schedule"]["schedule"] == "constant"
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))

    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        trainer(tmp_path, steps=8).fit()
    weights = ckpts / "step-000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    (ckpts / "step-000008.tmp").mkdir()  # a save that never finished
    t2 = trainer(tmp_path, steps=8, save_every=2, keep=2)
    summary = t2.fit(resume=True, allow_config_change=True)  # train.steps 6 -> 8: a recorded change
    skipped = "\n".join(summary["skipped_checkpoints"])
    assert "step-000008.tmp" in skipped and "step-000006" in skipped and "truncated" in skipped
    assert summary["start_step"] == 4 and summary["steps"] == 8
    resumed = [r for r in read_metrics(tmp_path) if "event" not in r]
    assert [r["step"] for r in resumed] == list(range(1, 9))  # the killed tail was dropped, no replay

    (ckpts / "step-000008" / "state.json").unlink()
    path, state, skipped = find_resumable(ckpts)
    assert path.name == "step-000006" and "state.json is missing" in skipped[-1]


# ---- evaluation, early stopping, logging, plots -----------------------------
def test_eval_early_stopping_metrics_and_plots(tmp_path, capsys):
    evals = []
    cfg = config(steps=40, eval_every=2, eval_batches=3, early_stop=2, lr=1e-12)
    t = Trainer(TinyMLM(), None, cfg, ArraySource(tokens(), 8, seed=1), tmp_path,
                eval_source=ArraySource(tokens(48, seed=9), 16, shuffle=False), on_eval=evals.append,
                progress=False)
    summary = t.fit()
    assert summary["stopped_early"] and summary["steps"] == 6 and len(evals) == 3
    e = summary["eval"]
    assert e["eval_ppl"] == pytest.approx(math.exp(e["eval_loss"])) and 0 <= e["eval_accuracy"] <= 1
    loss = count = 0.0
    with torch.no_grad():  # the eval loss is the token-weighted mean over the eval batches
        t.module.eval()
        for i in range(3):
            raw = ArraySource(tokens(48, seed=9), 16, shuffle=False).batch(i, 0, 1, 0, 1)
            b = t.task.transform(raw, transform_rng(cfg.seed, i, 0, EVAL))
            out = t.module(b)
            loss, count = loss + out.loss.item(), count + out.count
    assert e["eval_loss"] == pytest.approx(loss / count, rel=1e-6) and e["eval_targets"] == count
    lines = read_metrics(tmp_path)
    train = [r for r in lines if "event" not in r]
    assert [r["step"] for r in train] == list(range(1, 7))
    assert {"step", "loss", "lr", "tokens_per_s", "grad_norm", "elapsed", "accuracy"} <= set(train[0])
    assert (tmp_path / "config.toml").read_text().count("[train]") == 1

    from sesame.cli.plot import add_parser, run
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["plot", str(tmp_path)])
    assert args.run(args) == 0 and args.run is run
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["accuracy.png", "loss.png", "perplexity.png"]
    assert (tmp_path / "plots" / "loss.png").read_bytes()[:4] == b"\x89PNG"


# ---- child process entry (used by test_train_resume and test_train_ddp) -------------
def child_main() -> None:
    """python -c '...child_main()' JSON: train the tiny task and print a JSON summary."""
    import time

    torch.set_num_threads(1)
    args = json.loads(sys.argv[1])
    cfg = config(**args["train"])
    src = ArraySource(tokens(), cfg.batch_size, seed=1)
    asked = []
    real = src.batch
    src.batch = lambda step, *rest: (asked.append(step), real(step, *rest))[1]
    delay = args.get("delay", 0.0)
    t = Trainer(TinyMLM(random_mask=True, dropout=args.get("dropout", 0.1)), None, cfg, src, args["run_dir"],
                on_log=(lambda r: time.sleep(delay)) if delay else None, progress=False)
    summary = t.fit(resume=args.get("resume", False))
    if t.dist.main:
        summary["first_batch_step"] = min(asked) if asked else None
        if args.get("params"):
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in split_shared(t.module.state_dict())[0].items()},
                      args["params"])
        print("SUMMARY " + json.dumps(summary))
    t.close()


CHILD = ("import sys; sys.path.insert(0, {tests!r}); import test_train; test_train.child_main()"
         .format(tests=os.path.dirname(os.path.abspath(__file__))))
