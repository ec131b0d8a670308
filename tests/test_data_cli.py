"""`sesame data prepare | info`: one command from a folder of text to shards."""
from __future__ import annotations

import json

from sesame.cli.main import main
from sesame.tokenize import train_tokenizer

TEXT = ["The quick brown fox jumps over the lazy dog. It was not amused!",
        "Good things come to those who wait.", "今天天气很好。我们去公园玩吧！"]


def test_prepare_info_and_resume(tmp_path, capsys):
    tok = train_tokenizer(texts=TEXT * 10, kind="wordpiece", vocab_size=200, min_frequency=1)
    tok.save(tmp_path / "tok")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_bytes(("\n".join(TEXT) + "\n\n" + TEXT[0] + "\n").encode() + b"bad \xff\n")
    (docs / "README").write_text("not text input")
    out = tmp_path / "shards"
    argv = ["data", "prepare", str(docs), "--tokenizer", str(tmp_path / "tok"), "--out", str(out),
            "--workers", "2", "--no-progress", "--doc-boundary", "line"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "documents 5" in text and "invalid UTF-8: 1 byte(s) replaced" in text
    assert "exact duplicate documents: 1, kept" in text and "skipped 1 file(s)" in text
    assert "empty lines: 1" in text and "none truncated" in text
    assert main(argv + ["--json"]) == 0  # same command again: everything already done
    meta = json.loads(capsys.readouterr().out)
    assert meta["resumed_shards"] == len(meta["shards"]) and meta["num_docs"] == 5
    assert main(["data", "info", str(out), "--doc", "2"]) == 0
    assert "|今天" in capsys.readouterr().out.replace(" ", "")
    assert main(["data", "info", str(out)]) == 0
    assert "documents 5" in capsys.readouterr().out


def test_prepare_errors_exit_2(tmp_path, capsys):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01binary")
    assert main(["data", "prepare", str(tmp_path / "bin.txt"), "--tokenizer", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["data", "prepare", "--out", str(tmp_path / "o")]) == 2
    assert "no inputs" in capsys.readouterr().err
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "not a prepared corpus" in capsys.readouterr().err
