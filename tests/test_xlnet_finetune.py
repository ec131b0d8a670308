"""XLNet through the fine-tuning pipeline: ``sesame finetune`` on a tiny XLNet for
classification (SST-2) and tagging (CoNLL-2003), then ``classify`` and ``tag`` on the
result, with XLNet's input format ``a [SEP] (b [SEP]) [CLS]`` (left-padded for the
classifier, whose pooler reads the last position)."""
from __future__ import annotations

import json

import pytest
import torch

from sesame.cli.main import main
from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.models import build_model, load_model, save_model
from sesame.pipelines import pipeline
from sesame.tasks import Classification, QuestionAnswering, TagExample, Tagging, TextExample

QUICK = ["--set", "train.steps=8", "--set", "train.batch_size=16", "--set", "train.lr=0.02",
         "--set", "train.warmup=0", "--set", "train.log_every=1", "--set", "train.threads=1",
         "--set", "task.max_length=32", "--no-progress"]


def head_of(src, dst, rows: int, blank_lines: bool = False):
    """The first ``rows`` lines (CoNLL: sentences) of a real labeled file."""
    text = src.read_text()
    parts = text.split("\n\n")[:rows] if blank_lines else text.splitlines()[:rows + 1]
    dst.write_text(("\n\n" if blank_lines else "\n").join(parts) + "\n")
    return str(dst)


@pytest.fixture(scope="module")
def tok(shared_data):
    from sesame.tokenize import load_tokenizer

    return load_tokenizer(shared_data / "vocab" / "google_uncased_en_vocab.txt")


@pytest.fixture(scope="module")
def base(tok, tmp_path_factory):
    """A tiny random XLNet (the family's converted-from-HF shape) with an LM head."""
    cfg = ModelConfig(family="xlnet", arch="encoder", heads=["lm"], vocab_size=tok.vocab_size, hidden=16,
                      num_heads=2, layers=2, intermediate=32, position="none", attention="xl",
                      relative_segments=True, two_stream=True, type_vocab_size=0, attention_bias=False,
                      lm_bias=True, embedding_norm=False, pool_last=True, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("xlnet") / "model"
    save_model(build_model(cfg), out, extra={"tokenizer.json": tok.to_json()})
    return out


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r and r.get("event") != "eval"]


def test_xlnet_input_format_puts_the_classification_token_last(tok, base):
    model, _ = load_model(base)
    cls, sep = tok.cls_id, tok.sep_id
    task = Classification(tok, ["0", "1"], {"max_length": 32})
    task.wrap(model)
    a, b = tok.encode("a fine film").ids, tok.encode("it was").ids
    pair, single = task.features([TextExample("a fine film", "it was", "1"), TextExample("a fine film")])
    assert pair["input_ids"] == [*a, sep, *b, sep, cls]
    assert pair["token_type_ids"] == [0] * (len(a) + 1) + [1] * (len(b) + 1) + [2]
    batch = task.collate([pair, single])  # left-padded: [CLS] is the last position of every row
    assert (batch["input_ids"][:, -1] == cls).all() and batch["attention_mask"][1, : len(b) + 1].sum() == 0
    tagger = Tagging(tok, ["O", "B-PER", "I-PER"], {"max_length": 32})
    tagger.wrap(load_model(base)[0])
    feat = tagger.features([TagExample(["John", "lives", "here"], ["B-PER", "O", "O"])])[0]
    assert feat["input_ids"][-2:] == [sep, cls] and feat["word_token"] == [0, 1, 2]
    assert feat["labels"] == [1, 0, 0, -100, -100]
    with pytest.raises(ConfigError, match="qa task does not build XLNet's input format"):
        QuestionAnswering(tok, None, {}).wrap(load_model(base)[0])


def test_finetune_classify_and_tag_an_xlnet(tok, base, tmp_path, shared_data):
    sst2, conll = shared_data / "labeled" / "en" / "sst2", shared_data / "labeled" / "en" / "conll2003"
    run = tmp_path / "sst2"
    assert main(["finetune", str(base), "--train", head_of(sst2 / "train.tsv", tmp_path / "train.tsv", 16),
                 "--dev", head_of(sst2 / "dev.tsv", tmp_path / "dev.tsv", 8), "--task", "classification",
                 "--out", str(run), *QUICK]) == 0
    seen = losses(run)
    assert len(seen) == 8 and seen[-1] < seen[0] - 0.1 and max(seen[-3:]) < min(seen[:3]), seen
    lines = (sst2 / "dev.tsv").read_text().splitlines()[1:5]
    texts = [line.split("\t", 1)[1] for line in lines]
    out = tmp_path / "labels.jsonl"
    assert main(["classify", str(run / "model"), "--output", str(out), "--no-progress", *texts]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    model, _ = load_model(run / "model")
    labels = json.loads((run / "model" / "labels.json").read_text())
    model.eval()
    for text, row in zip(texts, rows):  # each text alone, unpadded, as XLNet reads it
        ids = tok.encode(text).ids[:30] + [tok.sep_id, tok.cls_id]
        with torch.no_grad():
            probs = model(torch.tensor([ids]), None, torch.tensor([[0] * (len(ids) - 1) + [2]])
                          ).logits["classify"].softmax(-1)[0]
        assert row["label"] == labels[int(probs.argmax())] and abs(row["score"] - float(probs.max())) < 1e-5

    run = tmp_path / "conll"
    assert main(["finetune", str(base), "--train", head_of(conll / "train.txt", tmp_path / "train.txt", 17, True),
                 "--dev", head_of(conll / "dev.txt", tmp_path / "dev.txt", 9, True), "--task", "tagging",
                 "--out", str(run), *QUICK]) == 0
    seen = losses(run)
    assert len(seen) == 8 and seen[-1] < seen[0] - 0.1 and max(seen[-3:]) < min(seen[:3]), seen
    sentences = ["John Smith lives in New York .", "EU rejects German call to boycott British lamb .",
                 "Peter Blackburn"]
    out = tmp_path / "entities.jsonl"
    assert main(["tag", str(run / "model"), "--output", str(out), "--no-progress", *sentences]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    pipe = pipeline("token-classification", run / "model")
    assert [r["entities"] for r in rows] == pipe(sentences)
    examples = [TagExample(s.split()) for s in sentences]
    feats = pipe.runner.features(examples)
    with torch.no_grad():
        batched = pipe.module.logits(pipe.runner.collate(feats))  # right-padded batch of three
        for row, feat in enumerate(feats):
            alone = pipe.model(torch.tensor([feat["input_ids"]]), None, torch.tensor([feat["token_type_ids"]]))
            n = len(feat["input_ids"])
            assert (batched[row, :n] - alone.logits["tag"][0]).abs().max() < 1e-5
    embed = pipeline("feature-extraction", run / "model")  # XLNet's [CLS] vector: the last real token
    with torch.no_grad():
        alone = embed.model(torch.tensor([tok.encode(sentences[2]).ids + [tok.sep_id, tok.cls_id]])).hidden[0, -1]
    assert (embed(sentences, pooling="cls")[2] - alone).abs().max() < 1e-5
    tags, _ = pipe.runner.predict(pipe.module, examples)
    want = [[pipe.labels[int(batched[r, t].argmax())] for t in f["word_token"]] for r, f in enumerate(feats)]
    assert tags == want
