"""`sesame compare`: one shared corpus and tokenizer, equal training FLOPs per arm, every
cell fine-tuned with the same seeds, a finished cell reused, and configs that cannot be
compared fairly refused when the study is built."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from sesame.cli.main import main
from sesame.compare import _cpu_attention_flops, load_study, run_study
from sesame.errors import ConfigError

BASE = """preset = "bert-tiny"
[tokenizer]
kind = "wordpiece"
vocab_size = 600
[data]
inputs = ["{text}"]
seq_len = 32
[model]
hidden = 32
layers = 1
num_heads = 2
intermediate = 64
max_positions = 32
position = "rotary"
[train]
steps = 10
batch_size = 8
lr = 1e-3
warmup = 0
eval_every = 2
save_every = 0
threads = 1
precision = "fp32"
"""

STUDY = """name = "smoke"
base = "base.toml"
seeds = [0, 1]
evidence = "{evidence}"
[budget]
reference = "mlm"
steps = 4
[[arm]]
name = "mlm"
[[arm]]
name = "wwm+sbo"
[arm.config.objective]
name = ["mlm", "sbo"]
[arm.config.objective.options.mlm]
unit = "span"
[arm.config.model]
heads = ["mlm", "sbo"]
[[finetune]]
dataset = "sst2"
max_train = 48
train = {{steps = 2, batch_size = 8, threads = 1}}
options = {{max_length = 24}}
"""


@pytest.fixture
def study_dir(tmp_path, shared_data):
    text = (shared_data / "corpora/en/tinyshakespeare").glob("*")
    first = sorted(p for p in text if p.is_file())[0]
    (tmp_path / "text.txt").write_text(first.read_text(encoding="utf-8")[:120_000], encoding="utf-8")
    (tmp_path / "base.toml").write_text(BASE.format(text=tmp_path / "text.txt"))
    (tmp_path / "study.toml").write_text(STUDY.format(evidence=tmp_path / "evidence"))
    return tmp_path


def test_study_runs_every_cell_at_equal_flops_and_reuses_finished_cells(study_dir, capsys):
    out = study_dir / "out"
    assert main(["compare", str(study_dir / "study.toml"), "--out", str(out), "--no-progress"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    ratio = plan["wwm+sbo"]["flops_per_step"] / plan["mlm"]["flops_per_step"]
    assert ratio > 1.0  # the SBO head costs FLOPs, so that arm gets fewer steps for the same budget
    assert plan["mlm"]["steps"] == 4 and plan["wwm+sbo"]["steps"] == round(4 / ratio)
    results = json.loads((out / "results.json").read_text())
    assert results["command"].startswith("sesame compare ")
    rows = results["finetune"]["sst2"]["rows"]
    assert set(rows) == {"mlm", "wwm+sbo", "random init"}
    assert all(sorted(c["seed"] for c in cells) == [0, 1] for cells in rows.values())
    for arm in ("mlm", "wwm+sbo"):  # each pre-trained once per seed on the one shared tokenizer
        runs = results["arms"][arm]["pretrain"]
        assert [r["steps"] for r in runs] == [plan[arm]["steps"]] * 2
        cfg = (out / "pretrain" / arm / "seed1" / "config.toml").read_text()
        assert "seed = 1" in cfg and str(out / "shared" / "corpus") in cfg
    # the random-init cell takes the first arm's architecture with no weights transferred
    def strategy(cell):
        return json.loads((out / "finetune/sst2" / cell / "seed0/summary.json").read_text())["strategy"]
    assert strategy("random")["transfer_layers"] == "none" and strategy("mlm")["transfer_layers"] == "all"
    table = (study_dir / "evidence" / "results.md").read_text()
    assert "| random init |" in table and (study_dir / "evidence" / "results.png").is_file()
    # the same command again trains nothing: every cell is reused
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    capsys.readouterr()
    assert main(["compare", str(study_dir / "study.toml"), "--out", str(out), "--no-progress"]) == 0
    assert "pre-train" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamps


def test_an_arm_that_cannot_share_the_corpus_or_budget_is_refused(study_dir):
    path = study_dir / "study.toml"
    text = path.read_text()
    path.write_text(text.replace('[arm.config.model]', '[arm.config.data]\ndoc_boundary = "line"\n[arm.config.model]'))
    study = load_study(path)
    with pytest.raises(ConfigError, match="doc_boundary"):
        run_study(study, study_dir / "out", stages=("pretrain",), progress=False, say=lambda _: None)
    path.write_text(text.replace("[[arm]]\nname = \"mlm\"", "[[arm]]\nname = \"mlm\"\ncolour = 1"))
    with pytest.raises(ConfigError, match="unknown key `colour`"):
        load_study(path)
    path.write_text(text.replace('steps = 4', 'steps = 4\nflops = 1e9'))
    with pytest.raises(ConfigError, match="flops = N, or steps = N"):
        load_study(path)
    path.write_text(text.replace('reference = "mlm"', 'reference = "xlnet"'))
    with pytest.raises(ConfigError, match="not an arm"):
        load_study(path)
    twice = text[text.index("[[finetune]]"):]
    path.write_text(text + twice)
    with pytest.raises(ConfigError, match="repeat a name"):
        load_study(path)
    path.write_text(text + twice.replace('dataset = "sst2"', 'name = "sst2-again"\ndataset = "sst2"'))
    assert [f.name for f in load_study(path).finetune] == ["sst2", "sst2-again"]
    (study_dir / "base.toml").write_text(BASE.format(text=study_dir / "text.txt").replace("warmup = 0", "warmup = 9"))
    path.write_text(text)
    with pytest.raises(ConfigError, match="warmup"):
        run_study(load_study(path), study_dir / "out2", stages=("pretrain",), progress=False, say=lambda _: None)


def test_cpu_attention_is_counted_with_the_sdpa_formula():
    from torch.utils.flop_counter import FlopCounterMode

    b, h, t, d = 2, 2, 16, 8
    q = torch.randn(b, h, t, d, requires_grad=True)
    with FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops()) as counter:
        F.scaled_dot_product_attention(q, q, q).sum().backward()
    forward = 2 * (2 * b * h * t * t * d)  # QK^T and AV
    assert counter.get_total_flops() == forward + int(2.5 * forward)  # backward: five products of the same size
