"""`sesame tokenizer train | encode | info`."""
from __future__ import annotations

import json

from sesame.cli.main import main

TEXT = "The quick brown fox jumps over the lazy dog.\nGood things come to those who wait.\n中华人民共和国成立了。\n"


def test_train_encode_info(tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_text(TEXT * 20, encoding="utf-8")
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", str(src), "--kind", "wordpiece", "--vocab-size", "120",
                 "--min-frequency", "1", "--out", str(out)]) == 0
    assert "wordpiece vocabulary of 1" in capsys.readouterr().out and (out / "tokenizer.json").is_file()
    assert main(["tokenizer", "encode", "--tokenizer", str(out), "--segmenter", "jieba", "--json",
                 "the lazy dog", "中华人民共和国"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().split("\n")]
    assert lines[0]["tokens"] == ["the", "lazy", "dog"] and lines[0]["offsets"] == [[0, 3], [4, 8], [9, 12]]
    assert lines[1]["word_starts"] == [1, 0, 0, 0, 0, 0, 0]  # jieba: one word
    assert main(["tokenizer", "encode", "--tokenizer", str(out / "tokenizer.json"), "--special", "dog"]) == 0
    assert "[CLS]" in capsys.readouterr().out
    assert main(["tokenizer", "info", str(out)]) == 0
    assert "mask" in capsys.readouterr().out


def test_train_from_config_and_jsonl(tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps({"body": line}) for line in TEXT.split("\n") * 10 if line))
    cfg = tmp_path / "run.toml"
    cfg.write_text('[tokenizer]\nkind = "bpe"\nvocab_size = 300\nmin_frequency = 1\n')
    assert main(["tokenizer", "train", str(src), "--config", str(cfg), "--text-field", "body",
                 "--out", str(tmp_path / "bpe")]) == 0
    assert "bpe vocabulary" in capsys.readouterr().out


def test_errors_exit_2(tmp_path, capsys):
    assert main(["tokenizer", "train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "t")]) == 2
    assert "error: input" in capsys.readouterr().err
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "nope"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["tokenizer", "train", str(tmp_path), "--out", str(tmp_path / "t"), "--set",
                 "tokenizer.kinds=bpe"]) == 2
    assert "did you mean" in capsys.readouterr().err
