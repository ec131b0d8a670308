"""The seq2seq task on a bidirectional encoder (UniLM's prefix-LM route): features,
cache on = cache off = the training forward, refusals at build, and a tiny UniLM
pre-trained, fine-tuned with `sesame finetune --train` and run with `sesame translate`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sesame.config import ModelConfig, load_config
from sesame.errors import ConfigError
from sesame.generate import generate
from sesame.models import build_model
from sesame.nn import Layout
from sesame.pretrain import pretrain
from sesame.tasks import PairExample, Seq2Seq

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("the cat", "le chat"), ("the dog", "le chien"), ("a cat", "un chat"), ("a dog", "un chien"),
         ("the bird", "le oiseau"), ("a bird", "un oiseau"), ("the fish", "le poisson"), ("a fish", "un poisson")]


@pytest.fixture(scope="module")
def tok(shared_data):
    path = shared_data / "vocab" / "google_uncased_en_vocab.txt"
    if not path.is_file():
        pytest.skip(f"the BERT vocabulary {path} is absent")
    from sesame.tokenize import load_tokenizer

    return load_tokenizer(path)


def encoder(tok, **kw) -> ModelConfig:
    return ModelConfig(arch="encoder", vocab_size=tok.vocab_size, hidden=32, layers=2, num_heads=4, intermediate=64,
                       max_positions=128, heads=["mlm"], dropout=0.0, attention_dropout=0.0, type_vocab_size=2, **kw)


def test_prefix_features_segments_and_shifted_labels(tok):
    task = Seq2Seq(tok, options={"max_length": 16, "max_target_length": 8})
    task.check_arch(encoder(tok))
    (f,) = task.features([PairExample("hello world", "good morning")])
    src, tgt = tok.encode("hello world").ids, tok.encode("good morning").ids
    assert f["input_ids"] == [tok.cls_id, *src, tok.sep_id, *tgt, tok.sep_id]
    assert f["token_type_ids"] == [0] * (len(src) + 2) + [1] * (len(tgt) + 1)
    assert f["prefix_len"] == len(src) + 2
    # position i predicts token i + 1, from the source's [SEP] to the last target token
    assert f["labels"] == [-100] * (len(src) + 1) + [*tgt, tok.sep_id] + [-100]
    batch = task.collate(task.features([PairExample("hello", "good"), PairExample("hello world", "good morning")]))
    assert batch["prefix_len"].tolist() == [3, len(src) + 2]


def test_prefix_lm_cache_on_equals_cache_off_equals_training_forward(tok):
    torch.manual_seed(0)
    model = build_model(encoder(tok)).eval()
    task = Seq2Seq(tok, options={"max_length": 16, "max_target_length": 6})
    module = task.wrap(model)
    prompts = [[tok.cls_id, *tok.encode(s).ids, tok.sep_id] for s in ("the cat sat", "a dog")]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    gen = generate(model, ids, mask, strategy="greedy", max_new_tokens=6, keep_logits=True, prefix_lm=True)
    # cache off: the whole sequence each step, under the training layout
    seq, m = ids, mask
    for step in range(6):
        types = torch.cat([torch.zeros_like(ids), torch.ones(2, seq.shape[1] - width, dtype=torch.long)], 1)
        layout = Layout(causal=True, prefix_len=torch.full((2,), width), key_padding=m)
        logits = model(seq, m, types, layout=layout).logits["mlm"][:, -1]
        torch.testing.assert_close(logits, gen.step_logits[step], atol=1e-5, rtol=1e-5)
        seq = torch.cat([seq, logits.argmax(-1)[:, None]], 1)
        m = torch.cat([m, torch.ones(2, 1, dtype=torch.long)], 1)
    assert seq[:, width:].tolist() == gen.sequences[:, width:].tolist()
    # the training forward (right-padded, one row) gives the same next-token logits as decoding
    row = prompts[1] + seq[1, width:].tolist()
    feats = [{"input_ids": row, "token_type_ids": [0] * len(prompts[1]) + [1] * 6, "labels": [1] * len(row),
              "prefix_len": len(prompts[1])}]
    b = task.collate(feats)
    layout = Layout(causal=True, prefix_len=b["prefix_len"], key_padding=b["attention_mask"])
    train_logits = module.model(b["input_ids"], b["attention_mask"], b["token_type_ids"], layout=layout).logits["mlm"]
    torch.testing.assert_close(train_logits[0, len(prompts[1]) - 1:-1], torch.stack(gen.step_logits, 1)[1],
                               atol=1e-5, rtol=1e-5)
    beam = generate(model, ids, mask, strategy="beam", num_beams=3, max_new_tokens=4, prefix_lm=True)
    assert len(beam.new_tokens) == 2


def test_prefix_route_refusals_at_build(tok):
    task = Seq2Seq(tok, options={"max_length": 16, "max_target_length": 8})
    with pytest.raises(ConfigError, match="type_vocab_size"):
        task.build(encoder(tok).replace(type_vocab_size=1))
    with pytest.raises(ConfigError, match="cannot honour"):
        task.build(encoder(tok, attention="linear"))
    with pytest.raises(ConfigError, match="max_positions"):
        Seq2Seq(tok, options={"max_length": 100, "max_target_length": 64}).build(encoder(tok))
    with pytest.raises(ConfigError, match="prefix_lm=True"):
        generate(build_model(encoder(tok)), torch.tensor([[tok.cls_id, tok.sep_id]]))


def test_unilm_pretrain_finetune_translate_end_to_end(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"{a} {b}. {c} {d}." for a, c in PAIRS for b, d in PAIRS[:3]))
    run = load_config("test-encoder", [
        f"data.inputs=[{str(corpus)!r}]", "data.seq_len=32", "tokenizer.vocab_size=120", "tokenizer.min_frequency=1",
        "train.steps=8", "train.batch_size=8", "train.lr=3e-3", "train.warmup=2", "train.log_every=4",
        "train.save_every=0", "train.eval_every=0", "model.max_positions=64", "train.threads=1",
        'objective.name="unilm"'])
    pretrain(run, tmp_path / "unilm", progress=False, say=lambda s: None)
    (tmp_path / "mt.tsv").write_text("source\ttarget\n" + "".join(f"{a}\t{b}\n" for a, b in PAIRS * 4))
    from sesame.finetune import finetune

    summary = finetune(tmp_path / "unilm" / "model", train=tmp_path / "mt.tsv", dev=tmp_path / "mt.tsv",
                       task="seq2seq", run_dir=tmp_path / "ft", progress=False, say=lambda s: None,
                       options={"max_length": 16, "max_target_length": 8},
                       train_config={"steps": 200, "batch_size": 8, "lr": 3e-3, "warmup": 5, "threads": 1,
                                     "log_every": 20, "eval_every": 0, "save_every": 0})
    scores = summary["eval"]["dev"]["metrics"]
    assert set(scores) == {"bleu", "chrf"} and scores["chrf"] > 0.9, scores  # two-word targets: BLEU has no 4-grams
    out = subprocess.run([sys.executable, "-m", "sesame.cli.main", "translate", str(tmp_path / "ft" / "model"),
                          "the cat"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "the cat\tle chat", out.stdout  # source TAB translation
