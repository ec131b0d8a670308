"""Static embeddings: sampling statistics, planted neighbours, GloVe counts and weights,
fastText subwords, gensim round trips, exact resume, the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from sesame.errors import ConfigError
from sesame.static.config import StaticConfig, load_static_config
from sesame.static.cooccur import Cooccurrence, count_cooccurrences, window_pairs
from sesame.static.corpus import corpus_from_words, words_of
from sesame.static.evaluate import analogy, read_analogies, similarity
from sesame.static.glove import GloVe, weighting
from sesame.static.huffman import huffman_paths
from sesame.static.sampling import NoiseSampler, cbow_contexts, keep_probability, skipgram_pairs, subsample
from sesame.static.subwords import char_ngrams, fnv1a, ngram_buckets
from sesame.static.train import train_static
from sesame.static.vectors import Vectors, load_vectors
from sesame.static.word2vec import Word2Vec, oov_vector

COUNTS = np.array([5000, 2000, 800, 300, 100, 40, 10, 3], dtype=np.int64)


# ---- word2vec sampling -----------------------------------------------------------------
def test_negative_samples_follow_unigram_to_the_075():
    sampler = NoiseSampler(COUNTS, 0.75)
    draws = sampler.sample(np.random.default_rng(0), 200_000)
    expected = COUNTS ** 0.75 / (COUNTS ** 0.75).sum()
    observed = np.bincount(draws, minlength=len(COUNTS))
    assert stats.chisquare(observed, expected * len(draws)).pvalue > 1e-3
    # and it is not the plain unigram distribution
    assert stats.chisquare(observed, COUNTS / COUNTS.sum() * len(draws)).pvalue < 1e-12


def test_subsampling_keeps_words_with_word2vecs_probability():
    t = 1e-2
    keep = keep_probability(COUNTS, t)
    f = COUNTS / COUNTS.sum()
    assert np.allclose(keep, np.minimum((np.sqrt(f / t) + 1) * t / f, 1))
    assert keep[0] < 0.5 and keep[-1] == 1.0  # the frequent word is thinned, rare words kept
    ids = np.repeat(np.arange(len(COUNTS)), 20_000)
    kept = subsample(ids, keep, np.random.default_rng(1))
    rate = np.bincount(ids[kept], minlength=len(COUNTS)) / 20_000
    se = np.sqrt(keep * (1 - keep) / 20_000) + 1e-9
    assert np.all(np.abs(rate - keep) < 5 * se + 1e-12)
    assert np.all(keep_probability(COUNTS, 0) == 1)


def test_dynamic_window_weights_distance_d_by_window_minus_d_plus_one():
    window, n = 5, 50_000
    ids = np.arange(n)
    inp, out = skipgram_pairs(ids, np.zeros(n, np.int64), window, np.random.default_rng(2))
    dist = np.abs(inp - out)
    observed = np.bincount(dist, minlength=window + 1)[1:]
    expected = np.array([(window - d + 1) / window for d in range(1, window + 1)]) * 2 * n
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3
    assert abs(observed.sum() / expected.sum() - 1) < 0.01
    # no pair crosses a document boundary
    doc = (ids >= n // 2).astype(np.int64)
    inp, out = skipgram_pairs(ids, doc, window, np.random.default_rng(3))
    assert not np.any((inp < n // 2) != (out < n // 2))
    ctx, centre = cbow_contexts(ids, doc, window, np.random.default_rng(3))
    ok = ctx >= 0
    assert np.all(((ctx < n // 2) == (centre[:, None] < n // 2))[ok])


def test_huffman_tree_gives_a_distribution():
    points, codes = huffman_paths(COUNTS)
    depth = (points >= 0).sum(1)
    assert depth[0] <= depth[-1]  # frequent words have short codes
    u = torch.randn(len(COUNTS) - 1, 4)
    h = torch.randn(4)
    probs = []
    for w in range(len(COUNTS)):
        p = 1.0
        for node, bit in zip(points[w], codes[w]):
            if node < 0:
                break
            s = torch.sigmoid(u[node] @ h)
            p *= float(s if bit == 0 else 1 - s)
        probs.append(p)
    assert abs(sum(probs) - 1) < 1e-5


# ---- planted neighbours ----------------------------------------------------------------
def _planted(seed=0, docs=300):
    rng = np.random.default_rng(seed)
    topics = [[f"{t}{i}" for i in range(6)] for t in ("apple", "river", "engine")]
    return [list(rng.choice(topics[d % 3], 20)) for d in range(docs)], topics


@pytest.mark.parametrize("method,arch,loss,shared", [
    ("word2vec", "sg", "ns", 0), ("word2vec", "cbow", "ns", 0), ("word2vec", "sg", "hs", 0),
    ("fasttext", "sg", "ns", 0), ("word2vec", "sg", "ns", 8), ("fasttext", "sg", "ns", 8)])
def test_planted_cooccurrences_give_the_expected_neighbours(method, arch, loss, shared):
    docs, topics = _planted(docs=150)
    corpus = corpus_from_words(docs)
    # a batch far smaller than the vocabulary: updates of a batch that share a row add up (Hogwild)
    cfg = StaticConfig(method=method, arch=arch, loss=loss, dim=16, window=3, sample=0, lr=0.05,
                       batch=64 if method == "fasttext" else 32, buckets=2000, min_count=1,
                       shared_negatives=shared)
    model = Word2Vec(cfg, corpus.vocab)
    doc = corpus.doc_of(0, corpus.words)
    for epoch in range(3):
        model.train_chunk(corpus.ids, doc, np.random.default_rng(epoch), lambda f: 0.05)
    vec = Vectors(corpus.vocab.words, model.word_vectors())
    for topic in topics:
        for word in topic:
            near = {w for w, _ in vec.similar(word, 3)}
            assert near <= set(topic), (word, near)


# ---- GloVe -----------------------------------------------------------------------------
def test_glove_weighting_is_the_hand_computation():
    x = np.array([0.5, 10.0, 99.0, 100.0, 250.0])
    assert np.allclose(weighting(x, 100.0, 0.75), [(0.5 / 100) ** 0.75, 0.1 ** 0.75, 0.99 ** 0.75, 1, 1])
    assert torch.allclose(weighting(torch.tensor(x), 100.0, 0.75), torch.tensor(weighting(x, 100.0, 0.75)))


def test_cooccurrence_counts_are_the_hand_computation(tmp_path):
    # two documents: [0 1 2 0] and [1 1]; window 2, weight 1/d, both directions
    ids = np.array([0, 1, 2, 0, 1, 1])
    doc = np.array([0, 0, 0, 0, 1, 1])
    rows, cols, vals = count_cooccurrences([(ids, doc)], 3, 2, tmp_path / "c")
    got = {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, vals)}
    hand = {(0, 1): 1 + 1 / 2, (1, 0): 1 + 1 / 2,  # 0-1 at distance 1, 1..0 at distance 2
            (1, 2): 1.0, (2, 1): 1.0, (0, 2): 1 / 2 + 1, (2, 0): 1 / 2 + 1,
            (1, 1): 2.0}  # the second document's pair, counted in both directions
    assert got == pytest.approx(hand)
    # sharded counting with a tiny buffer equals counting at once
    rng = np.random.default_rng(0)
    big = rng.integers(0, 40, 5000)
    bdoc = np.repeat(np.arange(10), 500)
    chunks = [(big[a:a + 700], bdoc[a:a + 700]) for a in range(0, 5000, 700)]
    counter = Cooccurrence(40, tmp_path / "s", buffer=300, shards=3)
    for i, d in chunks:
        counter.add(*window_pairs(i, d, 4))
    assert counter.flushes > 3
    r1, c1, v1 = counter.finish()
    r2, c2, v2 = count_cooccurrences([(np.concatenate([i for i, _ in chunks]),
                                       np.concatenate([d for _, d in chunks]))], 40, 4, tmp_path / "t", 10**9, 1)
    dense1, dense2 = np.zeros((40, 40)), np.zeros((40, 40))
    np.add.at(dense1, (r1, c1), v1)
    np.add.at(dense2, (r2, c2), v2)
    # chunk edges drop the pairs that straddle them, nothing else
    edge = sum(min(4, 700) for _ in range(len(chunks) - 1))
    assert np.all(dense1 <= dense2 + 1e-9) and dense1.sum() > dense2.sum() - 2 * edge * 3


def test_glove_step_lowers_the_loss():
    docs, topics = _planted()
    corpus = corpus_from_words(docs)
    rows, cols, vals = count_cooccurrences([(corpus.ids, corpus.doc_of(0, corpus.words))], len(corpus.vocab), 5,
                                           "/tmp/sesame-test-glove-shards")
    cfg = StaticConfig(method="glove", dim=8, lr=0.05, batch=64, x_max=10.0)
    model = GloVe(cfg, len(corpus.vocab))
    args = (torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(vals).log().float(),
            weighting(torch.from_numpy(vals), cfg.x_max, cfg.alpha).float())
    losses = [model.train_epoch(*args, np.random.default_rng(e)) for e in range(20)]
    assert losses[-1] < 0.3 * losses[0]
    vec = Vectors(corpus.vocab.words, model.vectors())
    assert {w for w, _ in vec.similar("apple0", 3)} <= set(topics[0])


# ---- fastText --------------------------------------------------------------------------
def test_char_ngrams_and_hash():
    assert char_ngrams("where", 3, 3) == ["<wh", "whe", "her", "ere", "re>"]  # the paper's example
    assert "<where>" not in char_ngrams("where", 3, 7)
    assert fnv1a(b"") == 2166136261 and fnv1a(b"a") == 0xE40C292C  # FNV-1a 32-bit test vectors


def test_fasttext_oov_vector_is_the_mean_of_its_ngram_vectors(tmp_path):
    docs, _ = _planted(docs=30)
    corpus = corpus_from_words(docs)
    cfg = StaticConfig(method="fasttext", dim=8, buckets=500, min_count=1)
    model = Word2Vec(cfg, corpus.vocab)
    model.train_chunk(corpus.ids, corpus.doc_of(0, corpus.words), np.random.default_rng(0), lambda f: 0.05)
    ngrams = model.ngram_vectors()
    word = "applesauce"
    hand = np.mean([ngrams[fnv1a(g.encode()) % 500] for g in char_ngrams(word, 3, 6)], axis=0)
    assert np.allclose(oov_vector(word, ngrams, cfg), hand, atol=1e-6)
    # a vocabulary word: the mean of its own row and its n-gram rows
    i = corpus.vocab.index["apple3"]
    rows = [model.input[i].numpy()] + [ngrams[b] for b in ngram_buckets("apple3", 3, 6, 500)]
    assert np.allclose(model.word_vectors()[i], np.mean(rows, axis=0), atol=1e-6)
    # saved and loaded, the vectors file answers for the unseen word the same way
    vec = Vectors(corpus.vocab.words, model.word_vectors(), subwords={"minn": 3, "maxn": 6, "buckets": 500},
                  ngrams=ngrams)
    vec.save(tmp_path, formats=("safetensors",))
    assert np.allclose(load_vectors(tmp_path).vector(word), hand, atol=1e-6)


# ---- formats ---------------------------------------------------------------------------
def test_formats_round_trip_through_gensim(tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = ["the", "whale", "naïve", "北京", "x1"]
    vec = Vectors(words, rng.standard_normal((5, 7)).astype(np.float32))
    vec.save(tmp_path)
    for name, binary in (("vectors.txt", False), ("vectors.bin", True)):
        kv = KeyedVectors.load_word2vec_format(str(tmp_path / name), binary=binary)
        assert list(kv.index_to_key) == words
        assert np.allclose(kv.vectors, vec.matrix, atol=1e-5 if not binary else 0)
        back = load_vectors(tmp_path / name)
        assert back.words == words and np.allclose(back.matrix, vec.matrix, atol=1e-5)
    kv.save_word2vec_format(str(tmp_path / "gensim.bin"), binary=True)
    assert np.array_equal(load_vectors(tmp_path / "gensim.bin").matrix, vec.matrix)
    assert np.array_equal(load_vectors(tmp_path).matrix, vec.matrix)


# ---- runs ------------------------------------------------------------------------------
def _write_corpus(path, docs):
    path.write_text("\n\n".join(" ".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("method", ["word2vec", "glove"])
def test_resume_is_exact(tmp_path, method):
    docs, _ = _planted(docs=120)
    src = _write_corpus(tmp_path / "c.txt", docs)
    cfg = StaticConfig(method=method, dim=8, epochs=3, chunk_words=500, min_count=1, lr=0.05)
    whole = train_static([str(src)], tmp_path / "whole", cfg, progress=False)
    part = train_static([str(src)], tmp_path / "part", cfg, progress=False, stop_after_words=2000)
    assert part["paused"]
    rest = train_static([str(src)], tmp_path / "part", cfg, progress=False)
    assert not rest["paused"] and rest["words_done" if method != "glove" else "epoch"] == \
        whole["words_done" if method != "glove" else "epoch"]
    assert np.array_equal(load_vectors(tmp_path / "whole").matrix, load_vectors(tmp_path / "part").matrix)
    with pytest.raises(ConfigError, match="other settings"):
        train_static([str(src)], tmp_path / "whole", cfg.replace(dim=4), progress=False)


def test_words_follow_the_data_readers(tmp_path):
    cfg = StaticConfig()
    assert words_of("The whale's back, 1851!", None, cfg) == ["the", "whale", "s", "back", "1851"]
    assert words_of("我爱北京天安门", None, cfg) == ["我", "爱", "北京", "天安门"]  # jieba
    assert words_of("我爱北京", [(0, 2), (2, 4)], cfg) == ["我爱", "北京"]  # gold words win
    tagged = tmp_path / "pd.txt"
    tagged.write_text("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n" * 5, encoding="utf-8")
    out = train_static([str(tagged)], tmp_path / "zh", StaticConfig(format="tagged", segmenter="gold", dim=4,
                                                                    epochs=1, min_count=1), progress=False)
    assert set(load_vectors(tmp_path / "zh").words) == {"迈向", "充满", "希望", "的", "新", "世纪"}
    assert out["corpus_words"] == 30


def test_spearman_matches_scipy():
    from sesame.static.evaluate import spearman

    rng = np.random.default_rng(0)
    a = rng.integers(0, 10, 200).astype(float)  # many ties
    b = a + rng.normal(0, 3, 200)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_evaluation_counts_oov_and_scores_3cosadd_and_3cosmul():
    words = ["king", "queen", "man", "woman", "apple"]
    m = np.array([[1, 1, 0], [1, -1, 0], [0, 1, 0.1], [0, -1, 0.1], [0, 0, 1]], dtype=np.float32)
    vec = Vectors(words, m)
    r = similarity(vec, [("king", "queen", 1.0), ("man", "woman", 2.0), ("king", "apple", 0.5),
                         ("king", "zebra", 3.0)])
    assert r["oov"] == 1 and r["found"] == 3
    sections = {"family": [("man", "woman", "king", "queen"), ("man", "king", "zebra", "x")]}
    out = analogy(vec, sections)
    assert out["family"]["answered"] == 1 and out["family"]["acc_add"] == 1.0 and out["family"]["acc_mul"] == 1.0
    assert out["semantic"]["questions"] == 2


def test_real_analogy_file_sections(shared_data):
    sections = read_analogies(shared_data / "wordsim" / "questions-words.txt")
    assert len(sections) == 14 and sum(map(len, sections.values())) == 19544


def test_config_checks():
    with pytest.raises(ConfigError, match="did you mean"):
        StaticConfig.from_dict({"windw": 3})
    with pytest.raises(ConfigError, match="GloVe"):
        StaticConfig.from_dict({"method": "glove", "arch": "cbow"})
    with pytest.raises(ConfigError, match="unknown static preset"):
        load_static_config("word2vec-sgg")
    cfg = load_static_config("fasttext", ["static.buckets=1000"], dim=8)
    assert (cfg.method, cfg.buckets, cfg.dim) == ("fasttext", 1000, 8)


def test_cli(tmp_path, capsys):
    from sesame.cli.main import main

    for action in ("train", "eval", "similar", "analogy"):
        with pytest.raises(SystemExit) as exit_:
            main(["static", action, "--help"])
        assert exit_.value.code == 0 and "usage" in capsys.readouterr().out
    docs, _ = _planted(docs=60)
    src = _write_corpus(tmp_path / "c.txt", docs)
    args = ["static", "train", str(src), "--dim", "8", "--epochs", "1", "--min-count", "1", "--no-progress"]
    # a run that diverges is refused loudly, not saved as NaN vectors
    huge = ["--lr", "1e30", "--set", "static.min_lr=1e29", "--set", "static.batch=16"]
    assert main([*args, "--out", str(tmp_path / "bad"), *huge]) == 2
    assert "diverged" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "vectors.txt").exists()
    assert main([*args, "--out", str(tmp_path / "run"), "--set", "static.batch=16"]) == 0
    capsys.readouterr()
    assert main(["static", "similar", "apple1", "--vectors", str(tmp_path / "run" / "vectors.txt"), "--topn", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["static", "analogy", "apple1", "apple2", "river1", "--vectors", str(tmp_path / "run")]) == 0
    assert main(["static", "train", str(src), "--out", str(tmp_path / "r2"), "--config", "nope"]) == 2
    assert "unknown static preset" in capsys.readouterr().err
    assert main(["static", "similar", "zebra", "--vectors", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not in the vocabulary" in err and len(err.splitlines()) == 1


# ---- transfer into a Transformer -------------------------------------------------------
def test_static_vectors_initialise_a_token_embedding(tmp_path):
    from sesame.static.transfer import FreezeFor, init_embedding
    from sesame.tokenize import load_tokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "whale", "##s", "run", "##ning", "xyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = load_tokenizer(tmp_path / "vocab.txt")
    rng = np.random.default_rng(0)
    words = ["the", "whale", "whales", "running"]
    vec = Vectors(words, rng.standard_normal((4, 6)).astype(np.float32), counts=[10, 5, 3, 2])
    weight = torch.nn.Parameter(torch.randn(len(vocab), 6) * 0.02)
    before = weight.detach().clone()
    report = init_embedding(weight, vec, tok, rescale=False)
    assert (report["special"], report["exact"], report["pieces"], report["uncovered"]) == (5, 2, 3, 1)
    assert report["coverage"] == pytest.approx(5 / 6)
    w = weight.detach().numpy()
    assert np.allclose(w[tok.token_to_id("the")], vec.vector("the"))
    assert np.allclose(w[tok.token_to_id("##s")], vec.vector("whales"))  # the only word holding ##s
    assert np.allclose(w[tok.token_to_id("run")], vec.vector("running"))
    for name in ("[CLS]", "xyz"):  # special and uncovered rows keep their initialisation
        assert torch.equal(weight[tok.token_to_id(name)], before[tok.token_to_id(name)])
    scaled = torch.nn.Parameter(before.clone())
    rep = init_embedding(scaled, vec, tok)
    assert np.allclose(scaled.detach().numpy()[5], vec.vector("the") * rep["scale"], atol=1e-6)
    with pytest.raises(ConfigError, match="dimensions"):
        init_embedding(torch.nn.Parameter(torch.zeros(len(vocab), 4)), vec, tok)
    # the verb: a fresh model from a config, its token embedding from the vectors, saved with the report
    from sesame.cli.main import main
    from sesame.models.io import load_model

    vec.save(tmp_path / "vec", formats=("safetensors",))
    (tmp_path / "m.toml").write_text("[model]\nhidden = 16\nlayers = 1\nnum_heads = 2\nintermediate = 32\n"
                                     "max_positions = 16\nembedding_size = 6\n[data]\nseq_len = 16\n")
    assert main(["static", "transfer", str(tmp_path / "vec"), "--config", str(tmp_path / "m.toml"), "--tokenizer",
                 str(tmp_path / "vocab.txt"), "--out", str(tmp_path / "model"), "--no-rescale"]) == 0
    model, _ = load_model(tmp_path / "model")
    assert np.allclose(model.body.embed.tokens.weight[tok.token_to_id("whale")].detach().numpy(), vec.vector("whale"))
    assert (tmp_path / "model" / "static-transfer.json").is_file()
    hook = FreezeFor([weight], 3)
    hook(0)
    assert not weight.requires_grad
    hook(3)
    assert weight.requires_grad


def test_strategy_freezes_the_token_embedding_for_the_first_steps():
    from sesame.config.model import ModelConfig
    from sesame.models.model import build_model
    from sesame.transfer import Plan, StrategyConfig

    model = build_model(ModelConfig(vocab_size=50, hidden=16, layers=1, num_heads=2, intermediate=32,
                                    max_positions=16, heads=["mlm"]))
    plan = Plan(model, StrategyConfig(freeze_embeddings_steps=4))
    plan.set_trainable(0)
    tokens = model.body.embed.tokens.weight
    others = [p for n, p in model.named_parameters() if "embed.tokens" not in n]
    plan.on_step(0)
    assert not tokens.requires_grad and all(p.requires_grad for p in others)
    plan.on_step(4)
    assert tokens.requires_grad
    with pytest.raises(ConfigError, match="freeze_embeddings_steps"):
        StrategyConfig(freeze_embeddings_steps=-1).validate()


# ---- the vectorised builders and the fast paths -----------------------------------------
def test_pair_builders_give_exactly_the_dynamic_window_pairs():
    from sesame.static.sampling import gather_ragged, ragged, window_sizes

    rng = np.random.default_rng(4)
    ids = rng.integers(0, 50, 40)
    doc = np.repeat([0, 1, 2], [15, 5, 20])
    b = window_sizes(len(ids), 4, np.random.default_rng(5))
    expected = sorted((int(ids[j]), int(ids[i])) for i in range(len(ids)) for j in range(len(ids))
                      if 0 < abs(i - j) <= b[i] and doc[i] == doc[j])  # (context, centre)
    inp, out = skipgram_pairs(ids, doc, 4, rng, b=b)
    assert sorted(zip(inp.tolist(), out.tolist())) == expected
    ctx, centre = cbow_contexts(ids, doc, 4, rng, b=b)
    values, offsets = ragged(ctx)
    rows, seg = gather_ragged(values, offsets, np.arange(len(centre)))
    assert sorted(zip(rows.tolist(), centre[seg].tolist())) == expected
    pick = np.array([3, 0, 3])
    got, seg = gather_ragged(values, offsets, pick)
    assert got.tolist() == [v for p in pick for v in values[offsets[p]:offsets[p + 1]]]
    assert seg.tolist() == [k for k, p in enumerate(pick) for _ in range(offsets[p + 1] - offsets[p])]


@pytest.mark.parametrize("method,arch", [("word2vec", "cbow"), ("fasttext", "cbow")])
def test_shared_negatives_cbow_gives_the_expected_neighbours(method, arch):
    docs, topics = _planted(docs=150)
    corpus = corpus_from_words(docs)
    cfg = StaticConfig(method=method, arch=arch, dim=16, window=3, sample=0, lr=0.05, batch=32, buckets=2000,
                       min_count=1, shared_negatives=8)
    model = Word2Vec(cfg, corpus.vocab)
    for epoch in range(3):
        model.train_chunk(corpus.ids, corpus.doc_of(0, corpus.words), np.random.default_rng(epoch), lambda f: 0.05)
    vec = Vectors(corpus.vocab.words, model.word_vectors())
    for topic in topics:
        for word in topic:
            assert {w for w, _ in vec.similar(word, 3)} <= set(topic)


def test_two_workers_train_the_planted_neighbours(tmp_path):
    docs, topics = _planted(docs=300)
    src = _write_corpus(tmp_path / "c.txt", docs)
    cfg = StaticConfig(dim=16, window=3, sample=0, lr=0.05, batch=32, min_count=1, epochs=3, chunk_words=2000,
                       shared_negatives=8, workers=2)
    summary = train_static([str(src)], tmp_path / "run", cfg, progress=False)
    assert summary["words_done"] == 3 * 6000
    vec = load_vectors(tmp_path / "run")
    for topic in topics:
        for word in topic:
            assert {w for w, _ in vec.similar(word, 3)} <= set(topic)
    with pytest.raises(ConfigError, match="workers"):
        StaticConfig(workers=0).validate()
