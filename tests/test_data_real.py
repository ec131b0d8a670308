"""Preparation on slices of the real corpora in ../shared/data: counts, offsets, word
records (English from the pre-tokenizer, Chinese from jieba or People's Daily gold
segmentation) and entity spans."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sesame.data import Corpus, prepare
from sesame.data.sentences import sentence_spans
from sesame.tokenize import get_segmenter, load_tokenizer, parse_tagged, train_tokenizer
from sesame.tokenize.chars import is_cjk
from sesame.tokenize.entities import tagged_entities


def _slice(src, dst, size):
    data = src.read_bytes()[:size]
    dst.write_bytes(data[: data.rfind(b"\n") + 1])
    return dst


@pytest.fixture(scope="module")
def english(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("en")
    books = sorted((shared_data / "corpora" / "en" / "gutenberg").glob("*.txt"))[:3]
    files = [_slice(b, root / b.name, 70_000) for b in books]
    sotu = shared_data / "corpora" / "en" / "state-of-the-union" / "sotu_1790-2021.jsonl"
    lines = sotu.read_text(encoding="utf-8").split("\n")[:3]
    (root / "sotu.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    files.append(root / "sotu.jsonl")
    tok = train_tokenizer(files[:3], kind="wordpiece", vocab_size=2000)
    meta = prepare([str(root)], tok, root / "out", progress=False, workers=2)
    return tok, files, meta, Corpus(root / "out")


def test_english_counts_and_offsets(english):
    tok, files, meta, corpus = english
    docs = []
    for f in files[:3]:  # gutenberg files have no blank lines: one document per line
        docs += [line.strip() for line in f.read_text(encoding="utf-8").split("\n") if line.strip()]
    docs += [json.loads(line)["text"].strip() for line in files[3].read_text(encoding="utf-8").split("\n") if line]
    assert [i["doc_boundary"] for i in meta["inputs"]][:3] == ["line"] * 3
    assert meta["num_docs"] == corpus.num_docs == len(docs)
    assert corpus.num_tokens == sum(len(tok.encode(d).ids) for d in docs)
    pre, norm = tok.backend.pre_tokenizer, tok.backend.normalizer
    n_sent = 0
    for i in list(range(0, len(docs) - 3, 7)) + [len(docs) - 3, len(docs) - 2, len(docs) - 1]:
        doc = corpus.doc(i)
        enc = tok.encode(docs[i])
        assert doc["ids"].tolist() == enc.ids
        assert int(doc["word_starts"].sum()) == len(pre.pre_tokenize_str(norm.normalize_str(docs[i])))
        spans = sentence_spans(docs[i])
        assert len(doc["sentences"]) == len(spans)
        n_sent += len(spans)
        starts = [o[0] for o in enc.offsets]
        for (s, _), (a, _) in zip(spans, doc["sentences"]):  # sentence offsets land on the right token
            assert a == np.searchsorted(starts, s + len(docs[i][s:]) - len(docs[i][s:].lstrip()))
    assert n_sent > 300
    assert meta["bad_input"]["invalid_utf8_bytes"] == 0 and meta["unk_rate"] < 0.01
    assert meta["long_documents"] >= 3  # the speeches are longer than the window


def test_chinese_words_follow_jieba(shared_data, tmp_path):
    src = shared_data / "corpora" / "zh" / "cluecorpus-small-sample" / "CLUECorpusSmall_sampled.txt"
    f = _slice(src, tmp_path / "zh.txt", 80_000)
    tok = load_tokenizer(shared_data / "vocab" / "google_zh_vocab.txt")
    meta = prepare([str(f)], tok, tmp_path / "out", progress=False)
    corpus = Corpus(tmp_path / "out")
    docs = [x.strip() for x in f.read_text(encoding="utf-8").split("\n") if x.strip()]
    assert meta["num_docs"] == len(docs) and meta["inputs"][0]["doc_boundary"] == "line"
    jieba = get_segmenter("jieba")
    checked = 0
    for i in range(0, len(docs), 5):
        enc = tok.encode(docs[i])
        doc = corpus.doc(i)
        assert doc["ids"].tolist() == enc.ids
        starts = {s for s, _ in jieba.spans(docs[i])}
        for (s, _), w in zip(enc.offsets, doc["word_starts"]):
            if is_cjk(docs[i][s]):
                assert bool(w) == (s in starts)
                checked += 1
    assert checked > 3000


def test_peoples_daily_gold_words_and_entities(shared_data, tmp_path):
    src = shared_data / "corpora" / "zh" / "peoples-daily-1998" / "199801_pos_tagged.txt"
    f = _slice(src, tmp_path / "pd.txt", 200_000)
    tok = load_tokenizer(shared_data / "vocab" / "google_zh_vocab.txt")
    meta = prepare([str(f)], tok, tmp_path / "out", progress=False, format="tagged")
    corpus = Corpus(tmp_path / "out")
    lines = [x for x in f.read_text(encoding="utf-8").split("\n") if x.strip()]
    assert meta["num_docs"] == len(lines) and meta["bad_input"]["bad_records"] == 0
    assert {"PER", "LOC", "ORG"} <= set(corpus.entity_types)
    n_words = n_ents = 0
    for i, line in enumerate(lines):
        text, words, tags = parse_tagged(line)
        enc = tok.encode(text)
        doc = corpus.doc(i)
        assert doc["ids"].tolist() == enc.ids
        # the word records are exactly the gold segmentation
        recorded = [s for (s, _), w in zip(enc.offsets, doc["word_starts"]) if w]
        assert recorded == [s for s, _ in words]
        n_words += len(words)
        gold = tagged_entities(words, tags)
        got = [(enc.offsets[a][0], enc.offsets[b - 1][1], corpus.entity_types[t]) for a, b, t in doc["entities"]]
        assert got == gold
        n_ents += len(gold)
    assert n_words > 20_000 and n_ents > 1_000


def test_large_vocabulary_uses_uint32(shared_data, tmp_path):
    import sentencepiece as spm

    model = shared_data / "vocab" / "cluecorpussmall_spm.model"
    src = shared_data / "corpora" / "zh" / "cluecorpus-small-sample" / "CLUECorpusSmall_sampled.txt"
    f = _slice(src, tmp_path / "zh.txt", 20_000)
    meta = prepare([str(f)], load_tokenizer(model), tmp_path / "out", progress=False, segmenter="none")
    corpus = Corpus(tmp_path / "out")
    assert meta["tokens_dtype"] == "uint32" and corpus.shards[0].tokens.dtype == np.uint32
    sp = spm.SentencePieceProcessor(model_file=str(model))
    first = f.read_text(encoding="utf-8").split("\n")[0].strip()
    assert corpus.doc(0)["ids"].tolist() == sp.encode(first)
