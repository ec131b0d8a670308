"""Chinese static vectors as a model: the tokenizer segments text with jieba exactly as
``sesame static train`` did, keeps its segmenter (and user dictionary) in tokenizer.json
through fine-tuning and reloading, and refuses what it cannot honour."""
from __future__ import annotations

import json

import pytest
import tokenizers

from sesame.errors import ConfigError, TokenizerError
from sesame.static.config import StaticConfig
from sesame.static.corpus import words_of
from sesame.static.train import train_static
from sesame.tokenize import Tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def reviews(shared_data):
    lines = (shared_data / "labeled/zh/chnsenticorp/train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t", 1)[1] for line in lines[:600]]


def _train(tmp_path, texts, **settings):
    (tmp_path / "text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    cfg = StaticConfig.from_dict({"method": "word2vec", "dim": 8, "epochs": 1, "min_count": 2,
                                  "segmenter": "jieba", **settings})
    train_static([str(tmp_path / "text.txt")], tmp_path / "w2v", cfg, progress=False)
    return tmp_path / "w2v", cfg


def test_chinese_vectors_split_text_as_training_did(tmp_path, reviews):
    from sesame.pipelines import load_any

    out, cfg = _train(tmp_path, reviews[:500])
    model, tok, _ = load_any(out)
    assert tok.segmenter is not None and tok.segmenter.name == "jieba"
    words = set(json.loads((out / "vocab.json").read_text(encoding="utf-8"))["words"])
    with_punct = StaticConfig.from_dict({**cfg.to_dict(), "punctuation": True})
    known = 0
    for text in reviews[500:]:  # unseen reviews: every word the trainer would count, in order
        enc = tok.encode(text)
        expect = [w if w in words else "[UNK]" for w in words_of(text, None, with_punct)]
        assert enc.tokens == expect
        assert [text[a:b].lower() for a, b in enc.offsets] == words_of(text, None, with_punct)
        assert all(enc.word_starts)
        known += sum(t != "[UNK]" for t in enc.tokens)
    assert known > 0.5 * sum(len(tok.encode(t).ids) for t in reviews[500:])
    arrays = tok.encode_arrays(reviews[500:510], offsets=True)
    assert arrays.ids.tolist() == [i for t in reviews[500:510] for i in tok.encode(t).ids]
    # the model's rows are the vectors of those words
    vec = json.loads((out / "vocab.json").read_text(encoding="utf-8"))["words"].index("酒店")
    from sesame.static.vectors import load_vectors

    assert model.body.embed.tokens.weight[tok.token_to_id("酒店")].tolist() == \
        pytest.approx(load_vectors(out).matrix[vec].tolist())


def test_the_segmenter_travels_in_tokenizer_json(tmp_path, reviews):
    from sesame.models import save_model
    from sesame.pipelines import load_any

    user = tmp_path / "user.txt"
    user.write_text("房间干净 100 n\n", encoding="utf-8")  # not a jieba word by default
    out, _ = _train(tmp_path, reviews[:300] + ["房间干净，服务好。"] * 3, user_dict=str(user))
    model, tok, _ = load_any(out)
    assert "房间干净" in tok.encode("这家房间干净").tokens
    save_model(model, tmp_path / "model", extra={"tokenizer.json": tok.to_json()})  # as fine-tuning saves it
    user.unlink()  # the saved tokenizer holds the user words itself
    _, again, _ = load_any(tmp_path / "model")
    for text in reviews[300:320] + ["这家房间干净"]:
        assert again.encode(text).ids == tok.encode(text).ids
    assert again.hash == tok.hash
    plain = Tokenizer(tokenizers.Tokenizer.from_str(tok.backend.to_str()))
    assert plain.hash != tok.hash  # the segmenter is part of what the tokenizer is
    saved = again.save(tmp_path / "tok")
    assert load_tokenizer(saved).encode("这家房间干净").tokens == again.encode("这家房间干净").tokens
    with pytest.raises(Exception, match="expected"):  # noqa: B017 - HF refuses it rather than mis-split Chinese
        tokenizers.Tokenizer.from_file(str(saved))
    with pytest.raises(ConfigError, match="no longer exists"):  # the vectors' own record of the dictionary
        load_any(out)


def test_unsegmented_vectors_split_as_trained_and_bad_segmenters_are_refused(tmp_path, reviews):
    from sesame.pipelines import load_any

    out, _ = _train(tmp_path, reviews[:200], segmenter="none")  # runs of characters, as training split them
    assert load_any(out)[1].segmenter is None
    data = json.loads(_tok_file(tmp_path).read_text(encoding="utf-8"))
    data["sesame"] = {"segmenter": {"name": "thulac"}}
    with pytest.raises(TokenizerError, match="unknown word segmenter"):
        Tokenizer.from_json(json.dumps(data))
    data["sesame"] = {"merges": []}
    with pytest.raises(TokenizerError, match="writes only"):
        Tokenizer.from_json(json.dumps(data))


def _tok_file(tmp_path):
    from tokenizers import models

    backend = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "好": 1}, unk_token="[UNK]"))
    path = tmp_path / "plain.json"
    backend.save(str(path))
    return path


def test_a_static_model_fine_tunes_on_chnsenticorp_and_reloads(tmp_path, reviews):
    from sesame.finetune import finetune
    from sesame.pipelines import load_any, pipeline

    out, _ = _train(tmp_path, reviews)
    summary = finetune(out, "chnsenticorp", tmp_path / "ft", {"steps": 3, "batch_size": 8, "lr": 1e-3},
                       strategy={"kind": "frozen", "task_encoder": "bilstm", "task_hidden": 4},
                       max_train=64, max_eval=32, progress=False, say=lambda _: None)
    assert summary["eval"]["dev"]["examples"] == 32 and 0 <= summary["eval"]["dev"]["metrics"]["accuracy"] <= 1
    _, tok, labels = load_any(tmp_path / "ft" / "model")
    assert tok.segmenter is not None and labels == ["0", "1"]
    classify = pipeline("text-classification", tmp_path / "ft" / "model")
    assert classify("房间很干净，服务也好。")[0]["label"] in ("0", "1")
