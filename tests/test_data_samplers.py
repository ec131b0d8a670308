"""Examples and samplers: packed windows, padded documents, NSP/SOP pairs, the
deterministic (seed, epoch, index) order, O(1) resume and rank sharding."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sesame.config import DataConfig
from sesame.data import (Batches, Corpus, DocumentExamples, PackedWindows, Permutation, Sampler, SentencePairs,
                         build_dataset, prepare)
from sesame.errors import DataError
from sesame.tokenize import train_tokenizer

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "It was not amused at all!", "Was it?",
             "Good things come to those who wait.", "Mr. Smith waited and waited.", "Nothing came."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tok = train_tokenizer(texts=SENTENCES * 10, kind="wordpiece", vocab_size=200, min_frequency=1)
    rng = np.random.default_rng(0)
    docs = []
    for d in range(60):
        n = int(rng.integers(1, 7))
        docs.append(" ".join(SENTENCES[(d + k) % len(SENTENCES)] for k in range(n)) + f" Doc {d}.")
    docs.append(" ".join(SENTENCES * 4))  # one long document
    folder = tmp_path_factory.mktemp("samplers")
    lex = folder / "lex.txt"
    lex.write_text("lazy dog\nMr. Smith\n", encoding="utf-8")
    (folder / "docs.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    prepare([str(folder / "docs.txt")], tok, folder / "out", progress=False, shard_mb=0.001,
            entities=str(lex))
    return Corpus(folder / "out")


def test_corpus_records(corpus):
    assert corpus.num_docs == 61 and len(corpus.shards) > 2
    assert corpus.num_tokens == int(corpus.doc_offsets[-1]) == int(corpus.sent_offsets[-1])
    assert set(corpus.doc_offsets.tolist()) <= set(corpus.sent_offsets.tolist())  # docs start sentences
    assert corpus.word_starts(0, corpus.num_tokens)[corpus.doc_offsets[:-1]].all()
    ents = corpus.entities
    assert len(ents) > 20 and (ents[1:, 0] >= ents[:-1, 1]).all()  # sorted, non-overlapping


def test_packed_windows_cover_the_stream(corpus):
    ds = PackedWindows(corpus, 32)
    sep, cls = corpus.special_ids["sep"], corpus.special_ids["cls"]
    assert len(ds) == math.ceil((corpus.num_tokens + corpus.num_docs) / 31)
    stream = []
    for i in range(len(ds)):
        ex = ds.example(i)
        assert ex["input_ids"].shape == (32,) and ex["input_ids"][0] == cls
        real = ex["attention_mask"]
        body = ex["input_ids"][1:real.sum()]
        stream += body.tolist()
        # the document id changes right after each separator, and only there
        d = ex["doc_ids"][1:real.sum()]
        is_sep = body == sep
        assert (np.diff(d) == is_sep[:-1]).all()
        assert not ex["word_starts"][~real].any() and ex["special_tokens_mask"][~real].all()
        if i < len(ds) - 1:
            assert real.all()  # only the last window is padded
    tokens = corpus.tokens(0, corpus.num_tokens).tolist()
    assert [t for t in stream if t != sep] == tokens  # every token kept, in order
    assert stream.count(sep) == corpus.num_docs


def test_packed_positions_restart_per_document(corpus):
    ds = PackedWindows(corpus, 64, prefix=())
    ex = ds.example(1)
    starts = np.nonzero(np.diff(ex["doc_ids"]))[0] + 1
    assert all(ex["position_ids"][s] == 0 for s in starts)


def test_document_examples_chunk_long_documents(corpus):
    ds = DocumentExamples(corpus, 24)
    lengths = np.diff(corpus.doc_offsets)
    assert len(ds) == int(np.ceil(lengths / 22).sum())
    assert ds.num_chunked == int((lengths > 22).sum()) >= 1
    long_doc = int(np.argmax(lengths))
    first = int(ds.cum[long_doc])
    n_chunks = int(math.ceil(lengths[long_doc] / 22))
    glued = []
    for j in range(n_chunks):
        ex = ds.example(first + j)
        n = int(ex["attention_mask"].sum())
        assert ex["input_ids"][0] == corpus.special_ids["cls"] and ex["input_ids"][n - 1] == corpus.special_ids["sep"]
        glued += ex["input_ids"][1:n - 1].tolist()
    a, b = corpus.doc_span(long_doc)
    assert glued == corpus.tokens(a, b).tolist()
    sent = DocumentExamples(corpus, 24, unit="sentence")
    assert len(sent) >= corpus.num_sentences


def test_entities_in_examples(corpus):
    tok = corpus.tokenizer()
    ds = DocumentExamples(corpus, 128)
    found = 0
    for i in range(len(ds)):
        ex = ds.example(i)
        for k in range(1, ex["entity_ids"].max() + 1):
            pos = np.nonzero(ex["entity_ids"] == k)[0]
            assert (np.diff(pos) == 1).all()
            assert tok.decode(ex["input_ids"][pos].tolist()) in ("lazy dog", "mr. smith")
            found += 1
    assert found == len(corpus.entities)


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_sentence_pairs_rate_and_structure(corpus, task):
    ds = SentencePairs(corpus, 48, task=task, seed=7)
    key = "next_sentence_label" if task == "nsp" else "sentence_order_label"
    n = 0
    labels = []
    for epoch in range(40):  # every segment, many epochs: an exact Bernoulli(0.5) per draw
        for i in range(len(ds)):
            label, ((a0, a1), (b0, b1)) = ds.plan(i, epoch)
            labels.append(label)
            n += 1
            doc_a = np.searchsorted(corpus.doc_offsets, a0, side="right") - 1
            doc_b = np.searchsorted(corpus.doc_offsets, b0, side="right") - 1
            if task == "nsp":
                assert (b0 == a1 and doc_a == doc_b) if label == 0 else (doc_a != doc_b)
            else:
                assert (b0 == a1) if label == 0 else (a0 == b1)
                assert doc_a == doc_b
            assert (a1 - a0) + (b1 - b0) <= 45 and a1 > a0 and b1 > b0
    rate = np.mean(labels)
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n)  # 4 sigma
    ex = ds.example(3, 1)
    ids, types = ex["input_ids"], ex["token_type_ids"]
    m = int(ex["attention_mask"].sum())
    assert ids[0] == corpus.special_ids["cls"] and (ids[:m] == corpus.special_ids["sep"]).sum() == 2
    assert ids[m - 1] == corpus.special_ids["sep"] and types[m - 1] == 1 and types[0] == 0
    assert int(ex[key]) == ds.plan(3, 1)[0]
    assert np.array_equal(ds.example(3, 1)["input_ids"], ids)  # deterministic


def test_nsp_needs_two_documents(tmp_path):
    tok = train_tokenizer(texts=SENTENCES, kind="wordpiece", vocab_size=120, min_frequency=1)
    (tmp_path / "one.txt").write_text(" ".join(SENTENCES), encoding="utf-8")
    prepare([str(tmp_path / "one.txt")], tok, tmp_path / "c", progress=False)
    with pytest.raises(DataError, match="two documents"):
        SentencePairs(Corpus(tmp_path / "c"), 32, task="nsp")
    assert len(SentencePairs(Corpus(tmp_path / "c"), 32, task="sop")) > 0


def test_permutation_is_a_seeded_bijection():
    for n in (1, 2, 7, 64, 1000, 4099):
        assert sorted(Permutation(n, seed=3, epoch=2)(np.arange(n)).tolist()) == list(range(n))
    a, b, c = (Permutation(100, s, e)(np.arange(100)) for s, e in ((0, 0), (0, 1), (1, 0)))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(a, Permutation(100, 0, 0)(np.arange(100)))
    assert Permutation(10**12, 5)(123456789) == Permutation(10**12, 5)(np.array([123456789]))[0]


def test_ranks_do_not_overlap():
    seen = []
    for rank in range(3):
        s = Sampler(100, seed=1, rank=rank, world_size=3)
        _, idx = s.take(33)
        seen.append(set(idx))
    assert sum(len(x) for x in seen) == 99 and len(set.union(*seen)) == 99


class CountingDataset:
    def __init__(self, n):
        self.n, self.calls = n, 0

    def __len__(self):
        return self.n

    def example(self, index, epoch=0):
        self.calls += 1
        return {"x": np.array([index, epoch])}


def test_resume_is_o1_and_exact():
    ds = CountingDataset(50)
    run = Batches(ds, 4, seed=11)
    seq = [run.next()["x"].tolist() for _ in range(30)]  # crosses epochs (12 batches each)
    assert run.epoch == 2
    first = Batches(ds, 4, seed=11)
    for _ in range(17):
        first.next()
    state = first.state_dict()
    assert set(state) == {"seed", "epoch", "index", "size", "world_size", "shuffle"}
    fresh = CountingDataset(50)
    resumed = Batches(fresh, 4, seed=0)
    resumed.load_state_dict(state)
    assert fresh.calls == 0  # nothing replayed
    assert [resumed.next()["x"].tolist() for _ in range(13)] == seq[17:]
    # every epoch visits distinct examples; epochs differ in order
    e0 = [i for b in seq[:12] for i, _ in b]
    assert len(set(e0)) == 48 and e0 != [i for b in seq[12:24] for i, _ in b]
    with pytest.raises(DataError, match="corpus or seq_len changed"):
        Batches(CountingDataset(51), 4).load_state_dict(state)


def test_resume_with_another_world_size_keeps_consumed_count():
    s = Sampler(100, seed=2, rank=0, world_size=4)
    s.take(10)
    t = Sampler(100, seed=2, rank=1, world_size=2)
    t.load_state_dict(s.state_dict())
    assert t.index == 20 and t.epoch == 0


def test_build_dataset_from_config(corpus):
    for kind, cls in [("packed", PackedWindows), ("document", DocumentExamples), ("sentence", DocumentExamples),
                      ("nsp", SentencePairs), ("sop", SentencePairs)]:
        ds = build_dataset(corpus.path, DataConfig(examples=kind, seq_len=32))
        assert isinstance(ds, cls) and ds.example(0)["input_ids"].shape == (32,)
    batch = Batches(build_dataset(corpus, DataConfig(examples="nsp", seq_len=32)), 8, seed=1).next()
    assert batch["input_ids"].shape == (8, 32) and batch["next_sentence_label"].shape == (8,)
    assert batch["attention_mask"].dtype == bool and batch["input_ids"].dtype == np.int64
