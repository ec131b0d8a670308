"""Corpus preparation on tiny inputs: formats, document boundaries, bad-input policy,
records next to the token ids, resuming, parallel workers."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sesame.config import DataConfig
from sesame.data import Corpus, prepare
from sesame.data.read import decode_utf8
from sesame.data.sentences import sentence_spans, split_sentences
from sesame.errors import ConfigError, DataError
from sesame.tokenize import train_tokenizer

TEXT = [
    "The quick brown fox jumps over the lazy dog. It was not amused! Was it?",
    "Good things come to those who wait. Mr. Smith waited and waited.",
    "今天天气很好。我们去公园玩吧！中华人民共和国成立了。",
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(texts=TEXT * 20, kind="wordpiece", vocab_size=300, min_frequency=1)


def run(tok, inputs, out, **kw):
    kw.setdefault("progress", False)
    return prepare([str(p) for p in inputs], tok, out, **kw)


def test_sentence_rules_english_and_chinese():
    assert split_sentences("Mr. Smith went to Washington. He said \"Hi!\" Then he left... J. K. Rowling "
                           "wrote it. The U.S. is big.") == [
        "Mr. Smith went to Washington.", 'He said "Hi!"', "Then he left...", "J. K. Rowling wrote it.",
        "The U.S. is big."]
    assert split_sentences("今天天气很好。我们去公园玩吧！你呢？“好的。”他说。") == [
        "今天天气很好。", "我们去公园玩吧！", "你呢？", "“好的。”", "他说。"]
    assert split_sentences("a line\nwrapped here.\n\nNew paragraph") == ["a line\nwrapped here.", "New paragraph"]
    text = "One. Two!  Three?"
    spans = sentence_spans(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # a partition


def test_decode_counts_replaced_bytes():
    assert decode_utf8("héllo".encode()) == ("héllo", 0)
    text, bad = decode_utf8(b"ab\xffcd\xe4\xb8 ok")
    assert text == "ab\ufffdcd\ufffd ok" and bad == 3


def test_blank_line_documents_and_counts(tmp_path, tok):
    src = tmp_path / "a.txt"
    src.write_text(f"{TEXT[0]}\n{TEXT[1]}\n\n   \n{TEXT[2]}\n\n\n", encoding="utf-8")
    meta = run(tok, [src], tmp_path / "out")
    bad = meta["bad_input"]
    assert meta["num_docs"] == 2 and meta["inputs"][0]["doc_boundary"] == "blank"
    assert bad["empty_lines"] == 3 and bad["whitespace_lines"] == 1 and bad["lines"] == 7
    assert meta["num_sentences"] == 3 + 2 + 3
    corpus = Corpus(tmp_path / "out")
    doc0 = corpus.doc(0)
    expected = tok.encode(TEXT[0] + "\n" + TEXT[1])
    assert doc0["ids"].tolist() == expected.ids
    assert doc0["word_starts"].tolist() == expected.word_starts  # English words: the pre-tokenizer's
    assert len(doc0["sentences"]) == 5 and doc0["sentences"][-1][1] == len(expected.ids)
    # Chinese document: word starts from jieba, one token per character
    doc1 = corpus.doc(1)
    tokens = tok.convert_ids_to_tokens(doc1["ids"].tolist())
    words = "".join(("|" if w else "") + t for t, w in zip(tokens, doc1["word_starts"]))
    import jieba

    assert words == "".join("|" + w for w in jieba.cut(TEXT[2]))  # e.g. |中华人民共和国|成立|了|。
    assert corpus.tokens(0, corpus.num_tokens).tolist() == doc0["ids"].tolist() + doc1["ids"].tolist()
    assert corpus.shards[0].tokens.dtype == np.uint16


def test_line_documents_invalid_utf8_and_binary(tmp_path, tok):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.txt").write_bytes(b"good dog\nbad \xff\xfe byte line\n\nthe fox\n")
    (tmp_path / "in" / "notes.md").write_text("skipped: not .txt")
    meta = run(tok, [tmp_path / "in"], tmp_path / "out", doc_boundary="line")
    bad = meta["bad_input"]
    assert meta["num_docs"] == 3 and bad["invalid_utf8_bytes"] == 2
    assert list(bad["invalid_utf8_by_file"].values()) == [2]
    assert [p.endswith("notes.md") for p in meta["skipped_inputs"]] == [True]
    (tmp_path / "in" / "blob.txt").write_bytes(b"abc\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="blob.txt looks like binary data"):
        run(tok, [tmp_path / "in"], tmp_path / "out2")
    (tmp_path / "u16.txt").write_bytes("hello".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        run(tok, [tmp_path / "u16.txt"], tmp_path / "out3")


def test_auto_boundary_without_blank_lines_is_one_per_line(tmp_path, tok):
    src = tmp_path / "lines.txt"
    src.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    meta = run(tok, [src], tmp_path / "out")
    assert meta["num_docs"] == 3 and meta["inputs"][0]["doc_boundary"] == "line"
    meta = run(tok, [src], tmp_path / "out2", doc_boundary="file")
    assert meta["num_docs"] == 1


def test_jsonl_and_tsv(tmp_path, tok):
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join([json.dumps({"text": TEXT[0]}), "{broken", json.dumps({"body": "x"}),
                              json.dumps({"text": "  "}), json.dumps({"text": TEXT[1]})]) + "\n")
    meta = run(tok, [src], tmp_path / "o1")
    bad = meta["bad_input"]
    assert meta["num_docs"] == 2 and bad["bad_records"] == 2 and bad["empty_documents"] == 1
    assert any("invalid JSON" in e for e in bad["bad_record_examples"])
    tsv = tmp_path / "d.tsv"
    tsv.write_text("label\ttext\n1\tgood dog\n0\tthe fox\nshort\n", encoding="utf-8")
    meta = run(tok, [tsv], tmp_path / "o2", column="text")
    assert meta["num_docs"] == 2 and meta["bad_input"]["bad_records"] == 1
    assert Corpus(tmp_path / "o2").doc(1)["ids"].tolist() == tok.encode("the fox").ids


def test_duplicates_counted_and_removed(tmp_path, tok):
    src = tmp_path / "dup.txt"
    src.write_text("\n".join([TEXT[0], TEXT[1], TEXT[0], TEXT[2], TEXT[0]]) + "\n")
    meta = run(tok, [src], tmp_path / "keep")
    assert meta["num_docs"] == 5 and meta["bad_input"]["duplicate_documents"] == 2
    meta = run(tok, [src], tmp_path / "drop", dedup=True)
    assert meta["num_docs"] == 3 and meta["bad_input"]["duplicates_removed"] == 2
    assert meta["bad_input"]["duplicate_documents"] == 2 and meta["text_kept_fraction"] < 0.8


def test_long_documents_are_chunked_not_truncated(tmp_path, tok):
    src = tmp_path / "long.txt"
    src.write_text(" ".join([TEXT[0]] * 20) + "\n" + TEXT[1] + "\n")
    meta = run(tok, [src], tmp_path / "out", seq_len=32)
    n0 = len(tok.encode(" ".join([TEXT[0]] * 20)).ids)
    assert meta["long_documents"] == 1 and meta["long_document_windows"] == -(-n0 // 30)
    assert meta["tokens_truncated"] == 0 and Corpus(tmp_path / "out").doc_span(0) == (0, n0)


def test_resume_after_interruption(tmp_path, tok):
    src = tmp_path / "many.txt"
    src.write_text("\n".join(f"{TEXT[i % 3]} {i}" for i in range(200)) + "\n")
    out = tmp_path / "out"
    first = run(tok, [src], out, shard_mb=0.002)
    assert len(first["shards"]) > 3
    before = Corpus(out)
    ids = before.tokens(0, before.num_tokens).copy()
    # simulate a kill: corpus meta missing, one shard gone, another half-written
    (out / "meta.json").unlink()
    shutil.rmtree(out / "shard-00001")
    (out / "shard-00002.tmp").mkdir()
    with pytest.raises(DataError, match="did not finish"):
        Corpus(out)
    again = run(tok, [src], out, shard_mb=0.002)
    assert again["resumed_shards"] == len(first["shards"]) - 1
    after = Corpus(out)
    assert np.array_equal(after.tokens(0, after.num_tokens), ids)
    assert np.array_equal(after.doc_offsets, before.doc_offsets)
    assert not list(out.glob("*.tmp"))
    with pytest.raises(DataError, match="different preparation"):
        run(tok, [src], out, shard_mb=0.002, seq_len=64)
    assert run(tok, [src], out, shard_mb=0.002, seq_len=64, overwrite=True)["num_docs"] == 200


def test_parallel_workers_give_identical_shards(tmp_path, tok):
    src = tmp_path / "many.txt"
    src.write_text("\n\n".join(f"{TEXT[i % 3]} {i}" for i in range(120)) + "\n")
    run(tok, [src], tmp_path / "w1", shard_mb=0.002, workers=1)
    run(tok, [src], tmp_path / "w2", shard_mb=0.002, workers=2)
    a, b = Corpus(tmp_path / "w1"), Corpus(tmp_path / "w2")
    assert len(a.shards) > 2 and a.meta["shards"] == b.meta["shards"]
    for name in ("tokens.bin", "words.bin", "docs.idx", "sents.idx", "entities.bin"):
        for sa, sb in zip(a.shards, b.shards):
            assert (sa.path / name).read_bytes() == (sb.path / name).read_bytes()


def test_entities_from_lexicon_conll_and_tagged(tmp_path, tok):
    lex = tmp_path / "lexicon.txt"
    lex.write_text("quick brown fox\tANIMAL\nlazy dog\tANIMAL\n中华人民共和国\tLOC\n", encoding="utf-8")
    src = tmp_path / "t.txt"
    src.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    meta = run(tok, [src], tmp_path / "lex", entities=str(lex))
    corpus = Corpus(tmp_path / "lex")
    assert meta["num_entities"] == 3 and set(corpus.entity_types) == {"ANIMAL", "LOC"}
    doc = corpus.doc(0)
    spans = [tok.decode(doc["ids"][s:e].tolist()) for s, e, _ in doc["entities"]]
    assert spans == ["quick brown fox", "lazy dog"]
    conll = tmp_path / "ner.conll"
    conll.write_text("-DOCSTART- -X- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\ncall O\n.\tO\n\n"
                     "Peter B-PER\nBlackburn I-PER\n\n-DOCSTART- -X- O\n\nBRUSSELS B-LOC\n", encoding="utf-8")
    meta = run(tok, [conll], tmp_path / "conll", format="conll")
    corpus = Corpus(tmp_path / "conll")
    assert meta["num_docs"] == 2 and meta["num_sentences"] == 3
    doc = corpus.doc(0)
    text = "EU rejects German call . Peter Blackburn"
    enc = tok.encode(text)
    assert doc["ids"].tolist() == enc.ids
    got = [(text[enc.offsets[s][0]:enc.offsets[e - 1][1]], corpus.entity_types[t]) for s, e, t in doc["entities"]]
    assert got == [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")]
    tagged = tmp_path / "pd.txt"
    tagged.write_text("中共中央/nt  总书记/n  江/nr  泽民/nr  访问/v  北京/ns  。/w\n", encoding="utf-8")
    meta = run(tok, [tagged], tmp_path / "pd", format="tagged", segmenter="gold")
    corpus = Corpus(tmp_path / "pd")
    doc = corpus.doc(0)
    text = "中共中央总书记江泽民访问北京。"
    enc = tok.encode(text)  # a small vocabulary: many [UNK], still one token per character
    assert doc["ids"].tolist() == enc.ids and len(enc.ids) == len(text)
    words = "".join(("|" if w else "") + c for c, w in zip(text, doc["word_starts"]))
    assert words == "|中共中央|总书记|江|泽民|访问|北京|。"  # the gold segmentation
    got = [(text[s:e], corpus.entity_types[t]) for s, e, t in doc["entities"]]
    assert got == [("中共中央", "ORG"), ("江泽民", "PER"), ("北京", "LOC")]


def test_user_errors_are_clear(tmp_path, tok):
    with pytest.raises(DataError, match="does not exist"):
        run(tok, [tmp_path / "missing.txt"], tmp_path / "o")
    with pytest.raises(DataError, match="matches no files"):
        run(tok, [str(tmp_path / "*.nothing")], tmp_path / "o")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="gold"):
        run(tok, [tmp_path / "x.txt"], tmp_path / "o", segmenter="gold")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a prepared corpus"):
        run(tok, [tmp_path / "x.txt"], tmp_path / "full")
    with pytest.raises(ConfigError, match="did you mean"):
        DataConfig.from_dict({"doc_boundry": "line"})
    with pytest.raises(DataError, match="no tokenizer"):
        prepare([str(tmp_path / "x.txt")], None, tmp_path / "o")
