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
strategy = {{dropout = 0.1}}
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
    assert strategy("random")["dropout"] == strategy("mlm")["dropout"] == 0.1  # the study's, for every cell
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
    for bad, match in (("{dropout = 1.5}", "must be in"), ("{drop = 0.1}", "unknown key `drop`"),
                       ('{transfer_layers = "top"}', "is the study's")):
        path.write_text(text.replace("strategy = {dropout = 0.1}", f"strategy = {bad}"))
        with pytest.raises(ConfigError, match=match):
            load_study(path)
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


LM_BASE = """preset = "gpt-tiny"
[tokenizer]
kind = "bpe"
vocab_size = 600
[data]
inputs = ["{text}"]
seq_len = 16
doc_boundary = "file"
[model]
vocab_size = 600
hidden = 32
layers = 1
num_heads = 2
intermediate = 64
max_positions = 64
position = "rotary"
[train]
steps = 10
batch_size = 4
lr = 1e-3
warmup = 0
eval_every = 0
save_every = 0
threads = 1
precision = "fp32"
"""

LM_STUDY = """name = "context"
base = "base.toml"
seeds = [0]
same_windows = false
[budget]
reference = "short"
steps = 3
[[arm]]
name = "short"
[[arm]]
name = "long"
[arm.config.data]
seq_len = 32
[arm.config.train]
batch_size = 2
[[arm]]
name = "xl-memory"
[arm.config.objective]
name = "xl-clm"
[arm.config.model]
attention = "xl"
position = "none"
mem_len = 32
[[evaluate]]
name = "held-out"
inputs = ["{held}"]
seq_len = [8, 32]
batch_size = 4
"""


def test_a_context_length_study_scores_every_arm_in_windows_of_each_length(tmp_path, shared_data):
    books = sorted((shared_data / "corpora/en/gutenberg").glob("*.txt"))
    (tmp_path / "text.txt").write_text(books[0].read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    (tmp_path / "held.txt").write_text(books[1].read_text(encoding="utf-8")[:6_000], encoding="utf-8")
    (tmp_path / "base.toml").write_text(LM_BASE.format(text=tmp_path / "text.txt"))
    study = tmp_path / "study.toml"
    study.write_text(LM_STUDY.format(held=tmp_path / "held.txt"))
    out = tmp_path / "out"
    assert main(["compare", str(study), "--out", str(out), "--no-progress"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    # the same tokens per step cost more attention in windows of 32; the recurrent arm is
    # counted with its memory full (each query reads 32 + 16 keys), so it gets fewer steps
    assert plan["long"]["flops_per_step"] > plan["short"]["flops_per_step"]
    assert plan["xl-memory"]["flops_per_step"] > plan["long"]["flops_per_step"] and plan["xl-memory"]["steps"] == 2
    results = json.loads((out / "results.json").read_text())
    rows = results["evaluate"]["held-out"]["rows"]
    assert set(rows) == {"short", "long", "xl-memory"}
    for cells in rows.values():
        r = cells[0]["results"]
        assert set(r) == {"8", "32"} and r["8"]["loss"] != r["32"]["loss"]
    saved = json.loads((out / "evaluate/held-out/long/seed0.json").read_text())
    assert saved["results"]["32"]["perplexity"] == rows["long"][0]["results"]["32"]["perplexity"]
    assert "windows of 32" in (out / "results.md").read_text() and (out / "evaluate.png").is_file()
    study.write_text(LM_STUDY.format(held=tmp_path / "held.txt").replace("same_windows = false\n", ""))
    with pytest.raises(ConfigError, match="context-length study says same_windows = false"):
        run_study(load_study(study), tmp_path / "out2", stages=("pretrain",), progress=False, say=lambda _: None)
