"""Issue 10: lose nothing, reproduce everything, refuse bad input. One test per defect:
run-directory locks, the overwrite policy, tokenizer/model agreement, the resume guard,
``train.keep``, the layer rule for ``sesame/train``, disk-full and permission errors,
finite config numbers, and reports of short vocabularies and replaced bytes."""
from __future__ import annotations

import ast
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import TinyMLM, config, tokens, trainer

from sesame.cli.main import main
from sesame.config import ModelConfig, load_config
from sesame.errors import CheckpointError, ConfigError, ConversionError, DataError, OutputError
from sesame.models import build_model, save_model
from sesame.pipelines import load_any
from sesame.tokenize import train_tokenizer
from sesame.train import ArraySource, Trainer, find_resumable, read_metrics
from sesame.train import checkpoint as ckpt
from sesame.train.lock import RunLock
from sesame.train.plot import plot_run

ROOT = Path(__file__).resolve().parents[1]
# the real RunLock, loaded without importing torch (sesame/train/__init__ does), so the holder starts fast
HOLD = """import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lock", "sesame/train/lock.py")
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
lock.RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# ---- 1. two runs in one directory -------------------------------------------------
def test_a_second_process_on_a_locked_run_directory_is_refused_by_name(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env(), cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=rf"in use by pid {holder.pid} on "):
            trainer(tmp_path).fit()
        assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    said = []
    with RunLock(tmp_path, said.append):  # the killed holder left its file: stale, reported, taken over
        pass
    assert said and f"stale lock of pid {holder.pid}" in said[0] and "is gone" in said[0]
    assert not (tmp_path / ".lock").exists()  # released on exit
    trainer(tmp_path).fit()


def test_plot_refuses_interleaved_metrics_naming_the_line_and_resume_rewrites_atomically(tmp_path, capsys):
    trainer(tmp_path, steps=4, save_every=2).fit()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    bad = lines[:1] + [lines[1][:30] + lines[2]] + lines[3:]
    (tmp_path / "metrics.jsonl").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"metrics.jsonl line 2 is corrupt"):
        plot_run(tmp_path)
    assert main(["plot", str(tmp_path)]) == 2
    capsys.readouterr()
    trainer(tmp_path, steps=4, save_every=2).fit(resume=True)
    # the unreadable line is dropped when the file is rewritten on resume, said, and its bytes kept aside
    assert f"warning: {tmp_path / 'metrics.jsonl'}: 1 corrupt line (2) dropped on resume" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl.corrupt").read_text() == bad[1] + "\n"
    assert [r["step"] for r in read_metrics(tmp_path, strict=True) if "event" not in r] == [1, 4]
    assert not list(tmp_path.glob("*.tmp"))
    plot_run(tmp_path)


# ---- 2. one overwrite policy --------------------------------------------------------
def test_writers_refuse_non_empty_targets_and_overwrite_keeps_foreign_files(tmp_path, capsys):
    target = tmp_path / "finetuned"
    save_model(build_model(ModelConfig(vocab_size=50, hidden=16, layers=1, num_heads=2, intermediate=32,
                                       max_positions=16)), target)
    (target / "labels.json").write_text('["neg", "pos"]')
    src = tmp_path / "text.txt"
    src.write_text("the cat sat on the mat\n" * 5)
    assert main(["convert", "--from-hf", str(tmp_path / "nowhere"), str(target)]) == 2
    assert main(["tokenizer", "train", str(src), "--out", str(target)]) == 2
    assert main(["finetune", str(target), "--dataset", "sst2", "--out", str(target)]) == 2
    assert main(["pretrain", "test-encoder", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "--overwrite" in err and "--resume" in err
    assert sorted(p.name for p in target.iterdir()) == ["config.toml", "labels.json", "model.safetensors"]
    assert main(["tokenizer", "train", str(src), "--out", str(target), "--overwrite"]) == 0
    save_model(build_model(ModelConfig(vocab_size=60, hidden=16, layers=1, num_heads=2, intermediate=32,
                                       max_positions=16)), target)  # a writer replacing its own files
    assert (target / "labels.json").read_text() == '["neg", "pos"]' and (target / "tokenizer.json").is_file()
    assert not list(tmp_path.glob("*.old")) and not list(tmp_path.glob("*.tmp"))


def test_model_files_are_written_with_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(build_model(ModelConfig(vocab_size=50, hidden=16, layers=1, num_heads=2, intermediate=32,
                                           max_positions=16)), tmp_path / "m")
        trainer(tmp_path / "run", steps=1).fit()
    finally:
        os.umask(old)
    files = [tmp_path / "m" / "model.safetensors", tmp_path / "m" / "config.toml",
             *(tmp_path / "run" / "checkpoints" / "step-000001").iterdir()]
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o644"}


# ---- 3. tokenizer and model must agree ------------------------------------------------
def test_a_tokenizer_that_does_not_fit_the_model_is_refused_on_load(tmp_path):
    tok = train_tokenizer(texts=["the cat sat on the mat, the dog sat on the log"] * 5, vocab_size=200,
                          min_frequency=1)
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden=16, layers=1, num_heads=2, intermediate=32,
                      max_positions=16, pad_token_id=tok.pad_id)
    save_model(build_model(cfg), tmp_path / "ok", extra={"tokenizer.json": tok.to_json()})
    load_any(tmp_path / "ok")
    big = build_model(cfg.replace(vocab_size=6052))
    save_model(big, tmp_path / "bad", extra={"tokenizer.json": tok.to_json()})
    with pytest.raises(CheckpointError, match=rf"tokenizer has {tok.vocab_size} tokens .* 6052 rows"):
        load_any(tmp_path / "bad")
    save_model(build_model(cfg.replace(pad_token_id=3)), tmp_path / "pad", extra={"tokenizer.json": tok.to_json()})
    with pytest.raises(CheckpointError, match="padding id"):
        load_any(tmp_path / "pad")


# ---- 4. the resume guard ---------------------------------------------------------------
def test_resume_with_a_changed_config_is_refused_or_recorded(tmp_path):
    trainer(tmp_path, steps=4, save_every=2).fit()
    with pytest.raises(ConfigError, match=r"train.seed 3 -> 4"):
        trainer(tmp_path, steps=4, seed=4).fit(resume=True)
    with pytest.raises(ConfigError, match=r"train.batch_size 8 -> 16"):
        trainer(tmp_path, steps=4, batch_size=16).fit(resume=True)
    with pytest.raises(ConfigError, match=r"train.lr 0.01 -> 0.001.*--allow-config-change"):
        trainer(tmp_path, steps=6, lr=1e-3).fit(resume=True)
    cfg = config(steps=4)
    Trainer(TinyMLM(), None, cfg, ArraySource(tokens(), 8, seed=1), tmp_path / "h", progress=False,
            config={"train": cfg.to_dict(), "model": {"hidden": 16}}).fit()
    wider = Trainer(TinyMLM(), None, cfg, ArraySource(tokens(), 8, seed=1), tmp_path / "h", progress=False,
                    config={"train": cfg.to_dict(), "model": {"hidden": 32}})
    with pytest.raises(ConfigError, match=r"model.hidden 16 -> 32"):  # before: a RuntimeError traceback
        wider.fit(resume=True)
    t = trainer(tmp_path, steps=6, lr=1e-3)
    summary = t.fit(resume=True, allow_config_change=True)
    assert summary["start_step"] == 4 and t.optimizer.param_groups[0]["initial_lr"] == 1e-3
    state = json.loads((tmp_path / "checkpoints" / "step-000006" / "state.json").read_text())
    assert state["config_history"][0]["step"] == 4
    assert state["config_history"][0]["changes"] == {"train.lr": [0.01, 0.001], "train.steps": [4, 6]}
    head = (tmp_path / "config.toml").read_text().splitlines()[0]
    assert head.startswith("# config history: from step 4: train.lr 0.01 -> 0.001")


def test_keep_counts_only_complete_checkpoints_and_all_bad_is_an_error(tmp_path):
    trainer(tmp_path, steps=6, save_every=2, keep=0).fit()
    c = tmp_path / "checkpoints"
    (c / "step-000006" / "state.json").unlink()  # broken newer ones
    (c / "step-000004" / "optimizer.safetensors").write_bytes(b"x")
    trainer(tmp_path, steps=6, save_every=2, keep=1).fit(resume=True)  # resumes at 2, writes 4 and 6
    assert sorted(p.name for p in c.iterdir()) == ["step-000006"]
    assert ckpt.read_state(c / "step-000006")["step"] == 6
    t = trainer(tmp_path, steps=8, save_every=2, keep=1)
    (c / "step-000006" / "model.safetensors").write_bytes(b"")
    (c / "step-000009").mkdir()
    with pytest.raises(CheckpointError, match="none of the checkpoints .* can be resumed"):
        t.fit(resume=True)  # before: a silent restart from step 0
    assert (c / "step-000006").is_dir()


def test_save_keeps_the_new_checkpoint_when_newer_broken_ones_exist(tmp_path):
    trainer(tmp_path, steps=2, save_every=2).fit()
    c = tmp_path / "checkpoints"
    for step in (4, 6):
        (c / f"step-{step:06d}").mkdir()  # broken newer checkpoints
    t = trainer(tmp_path, steps=4, save_every=2, keep=1)
    t.fit(resume=True, allow_config_change=True)
    assert ckpt.read_state(c / "step-000004")["step"] == 4  # before: deleted right after it was written
    assert (c / "step-000006").is_dir() and not (c / "step-000002").exists()


# ---- 6. the layer rule ------------------------------------------------------------------
def test_train_imports_only_config_data_errors_and_the_task_seam():
    allowed = ("sesame.config", "sesame.data", "sesame.errors", "sesame.task", "sesame.train", "sesame.outputs")
    for path in (ROOT / "sesame" / "train").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sesame"):
                assert node.module.startswith(allowed), (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sesame") and not a.name.startswith(allowed) for a in node.names)


# ---- 8. disk full, permissions, numbers, reports --------------------------------------------
def test_disk_full_in_the_checkpoint_writer_is_one_error_and_the_run_resumes(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    trainer(tmp_path, steps=2, save_every=2).fit()
    real = ckpt._save_tensors
    calls = []

    def full(tensors, path, meta):
        calls.append(path)
        if len(calls) == 2:
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                                  "\"No space left on device\" }) (os error 28)")
        real(tensors, path, meta)

    monkeypatch.setattr(ckpt, "_save_tensors", full)
    with pytest.raises(OutputError, match=r"no space left .*step-000004: it needs about [\d.]+ MB, .* free"):
        trainer(tmp_path, steps=4, save_every=2).fit(resume=True, allow_config_change=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002"]  # no .tmp left
    monkeypatch.setattr(ckpt, "_save_tensors", real)
    summary = trainer(tmp_path, steps=4, save_every=2).fit(resume=True, allow_config_change=True)
    assert summary["start_step"] == 2 and summary["steps"] == 4 and not summary["skipped_checkpoints"]

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt, "_save_tensors", denied)
    with pytest.raises(OutputError, match="permission denied writing"):
        trainer(tmp_path / "p", steps=1).fit()


def test_data_prepare_disk_full_and_empty_input_are_error_lines(tmp_path, monkeypatch, capsys):
    tok = train_tokenizer(texts=["the cat sat on the mat"] * 5, vocab_size=60, min_frequency=1)
    tok.save(tmp_path / "tok")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    assert main(["data", "prepare", str(empty), "--tokenizer", str(tmp_path / "tok"), "--out",
                 str(tmp_path / "c"), "--no-progress"]) == 2
    assert "hold no text" in capsys.readouterr().err
    import sesame.data.shards as shards

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 20)
    monkeypatch.setattr(shards.np, "save", full, raising=False)
    monkeypatch.setattr(shards.json, "dumps", full)
    rc = main(["data", "prepare", str(text), "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "d"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: no space left") and err.count("\n") == 1


def test_every_config_number_must_be_finite_and_is_checked_before_any_work(tmp_path, capsys):
    for bad in ("train.lr=nan", "train.clip=nan", "train.lr=inf", "train.weight_decay=-inf"):
        with pytest.raises(ConfigError, match="not a finite number"):
            load_config("test-encoder", [bad])
    src = tmp_path / "t.txt"
    src.write_text("the cat sat on the mat\n" * 5)
    assert main(["pretrain", "test-encoder", "--out", str(tmp_path / "run"), "--set", "train.lr=nan",
                 "--set", f"data.inputs=[{str(src)!r}]"]) == 2
    assert "train.lr = nan is not a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # no tokenizer or corpus was built


def test_malformed_hf_config_json_is_a_clear_error(tmp_path):
    from sesame.models.hf import from_hf

    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    with pytest.raises(ConversionError, match="not valid JSON"):
        from_hf(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": "wide"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises((ConversionError, CheckpointError, ConfigError)):
        from_hf(tmp_path)


def test_tokenizer_train_reports_replaced_bytes_and_a_short_vocabulary(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_bytes(b"the cat \xff\xfe sat\non the mat\n")
    assert main(["tokenizer", "train", str(src), "--vocab-size", "200", "--out", str(tmp_path / "tok")]) == 0
    err = capsys.readouterr().err
    assert "2 invalid UTF-8 bytes" in err and "came out at" in err and "of the 200 tokens asked" in err


# ---- 7. reproducibility, and a finished run resumed --------------------------------------------
TEXT = "\n\n".join(f"The {a} sat on the {b}. A {a} is not a {b}, but the {b} holds the {a}."
                   for a in ("cat", "dog", "bird", "fish", "horse") for b in ("mat", "chair", "table", "box"))


def test_two_fresh_pretrain_runs_are_identical_and_a_finished_run_resumes_cleanly(tmp_path, capsys):
    from safetensors.torch import load_file

    src = tmp_path / "text.txt"
    src.write_text(TEXT * 3)
    sets = [f"data.inputs=[{str(src)!r}]", "data.seq_len=32", "tokenizer.vocab_size=90", "tokenizer.min_frequency=1",
            "train.steps=4", "train.batch_size=4", "train.log_every=1", "train.deterministic=true", "train.threads=1",
            "train.device='cpu'", "model.max_positions=32", "model.hidden=32", "model.layers=1"]
    args = [a for s in sets for a in ("--set", s)]

    def cli(out, *extra):
        return [sys.executable, "-m", "sesame.cli.main", "pretrain", "test-encoder", "--out", str(out),
                "--no-progress", *args, *extra]

    procs = [subprocess.Popen(cli(tmp_path / n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env(), cwd=ROOT) for n in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    losses = [[r["loss"] for r in read_metrics(d) if "event" not in r and "loss" in r] for d in (a, b)]
    assert len(losses[0]) == 4 and losses[0] == losses[1]
    wa, wb = (load_file(str(d / "model" / "model.safetensors")) for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    capsys.readouterr()
    assert main(cli(a, "--resume")[3:]) == 0  # before: a TypeError in cli/pretrain.py
    assert "already finished at step 4" in capsys.readouterr().out


UNIGRAM = """import sys
from pathlib import Path
from sesame.tokenize import train_tokenizer
tok = train_tokenizer([sys.argv[1]], kind="unigram", vocab_size=600)
Path(sys.argv[2]).write_text(tok.to_json(), encoding="utf-8")
"""


def test_unigram_training_is_reproducible_across_fresh_processes(tmp_path, shared_data):
    from sesame.tokenize import load_tokenizer

    lines = (shared_data / "corpora/en/tinyshakespeare/input.txt").read_text(encoding="utf-8").splitlines(True)
    src = tmp_path / "text.txt"
    src.write_text("".join(lines[:8000]), encoding="utf-8")  # ~280 KB: tokenizers' Unigram trainer gave two vocabs
    outs = [tmp_path / f"{n}.json" for n in "ab"]
    procs = [subprocess.Popen([sys.executable, "-c", UNIGRAM, str(src), str(o)], stderr=subprocess.PIPE, text=True,
                              env=env(), cwd=ROOT) for o in outs]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert outs[0].read_bytes() == outs[1].read_bytes()
    tok = load_tokenizer(outs[0])
    assert tok.kind == "unigram" and tok.vocab_size == 600  # the size asked is reached
    held_out = [ln.rstrip("\n") for ln in lines[20000:20300] if ln.strip()]
    assert all(tok.decode(tok.encode(ln).ids) == ln for ln in held_out)  # unseen text round-trips
    ids = [i for ln in held_out for i in tok.encode(ln).ids]
    assert ids.count(tok.token_to_id("<unk>")) == 0
    chars = sum(len(ln) for ln in held_out)
    assert len(ids) < chars / 2  # real subwords (with <s> and </s> per line), not characters


# ---- 9. faults around checkpoints ----------------------------------------------------------------
@pytest.mark.slow  # two trainer processes (~10 s of CPU); the lock itself is tested above in one process
def test_two_training_processes_on_one_run_directory_lose_nothing(tmp_path):
    from test_train import CHILD

    def child(**extra):
        args = {"run_dir": str(tmp_path), "train": dict(steps=8, save_every=2, keep=2, log_every=1), **extra}
        return [sys.executable, "-c", CHILD, json.dumps(args)]

    procs = [subprocess.Popen(child(delay=0.6), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env()) for _ in range(2)]  # started together: one takes the lock
    results = [(p.pid, *p.communicate(timeout=180), p.returncode) for p in procs]
    ok = [r for r in results if r[3] == 0]
    refused = [r for r in results if r[3] != 0]
    assert len(ok) == 1 and len(refused) == 1, results
    assert f"in use by pid {ok[0][0]}" in refused[0][2]
    steps = [r["step"] for r in read_metrics(tmp_path, strict=True) if "event" not in r]
    assert steps == list(range(1, 9))  # one writer, nothing interleaved
    path, state, skipped = find_resumable(tmp_path / "checkpoints")
    assert state["step"] == 8 and not skipped


def test_a_corrupt_newest_or_oldest_checkpoint_costs_nothing_but_its_own_steps(tmp_path, capsys):
    full = trainer(tmp_path / "full", steps=6, save_every=2, keep=0)
    full.fit()
    expected = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "full") if "event" not in r}
    run = tmp_path / "run"
    trainer(run, steps=6, save_every=2, keep=0).fit()
    c = run / "checkpoints"
    (c / "step-000002" / "model.safetensors").write_bytes(b"\0" * (c / "step-000002" / "model.safetensors")
                                                          .stat().st_size)  # oldest: same size, wrong bytes
    raw = (c / "step-000006" / "state.json").read_bytes()
    (c / "step-000006" / "state.json").write_bytes(raw[: len(raw) // 2])  # newest: torn
    summary = trainer(run, steps=6, save_every=2, keep=0).fit(resume=True)
    assert summary["start_step"] == 4 and any("step-000006" in s for s in summary["skipped_checkpoints"])
    assert {r["step"]: r["loss"] for r in read_metrics(run) if "event" not in r} == expected
    assert ckpt.read_state(c / "step-000006")["step"] == 6  # rewritten whole
    with pytest.raises(CheckpointError, match="SHA-256"):
        ckpt.read_state(c / "step-000002")  # named, kept for inspection, never silently used
