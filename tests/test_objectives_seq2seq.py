"""Encoder-decoder objectives: t5-span, bart denoising, mass. Each: the statistics of
its noise, exact recovery of the original from input + target, the shapes the
packing promises, and (tests/test_pretrain_seq2seq.py) a short training run."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sesame.errors import ConfigError
from sesame.objectives import IGNORE, Vocab
from sesame.objectives.denoise import Denoise, infill, sentence_pieces, span_lengths
from sesame.objectives.mass import Mass
from sesame.objectives.t5_span import T5Span, corrupted_lengths, noise_spans, raw_length

PAD, BOS, EOS, MASK = 0, 1, 2, 3
SENTINELS = tuple(range(4, 104))
V = 400
VOCAB = Vocab(V, (PAD, BOS, EOS, MASK, *SENTINELS), PAD, MASK, BOS, EOS, SENTINELS)


def windows(rows: int, width: int, seed: int = 0, real: list[int] | None = None) -> dict:
    rng = np.random.default_rng(seed)
    ids = rng.integers(104, V, (rows, width))
    mask = np.ones((rows, width), dtype=bool)
    for r, n in enumerate(real or []):
        ids[r, n:], mask[r, n:] = PAD, False
    return {"input_ids": ids, "attention_mask": mask}


# ---- t5-span ----------------------------------------------------------------
def recover_t5(src: list[int], tgt: list[int]) -> list[int]:
    """Put each sentinel's span back into the input."""
    spans, cur = {}, None
    for t in tgt:
        if t in SENTINELS:
            cur = t
            spans[cur] = []
        elif t != EOS:
            spans[cur].append(t)
    out = []
    for t in src:
        out += spans[t] if t in SENTINELS else ([] if t == EOS else [t])
    return out


@pytest.mark.parametrize("seq_len", [32, 64, 128, 512, 568])
def test_t5_lengths_are_exact_for_packing(seq_len):
    raw = raw_length(seq_len, 0.15, 3.0)
    inputs, targets = corrupted_lengths(raw, 0.15, 3.0)
    assert inputs <= seq_len < corrupted_lengths(raw + 1, 0.15, 3.0)[0]
    obj = T5Span(VOCAB)
    assert T5Span.window_length(seq_len, {}) == raw and obj.target_length(seq_len) == targets
    out = obj.transform(windows(6, raw, seed=seq_len), np.random.default_rng(seq_len))
    assert out["input_ids"].shape == (6, inputs) and out["labels"].shape == (6, targets)
    assert out["attention_mask"].all() and out["decoder_attention_mask"].all()  # full windows: no padding at all
    assert (out["input_ids"][:, -1] == EOS).all() and (out["labels"][:, -1] == EOS).all()


def test_t5_original_is_recovered_exactly_and_teacher_forcing_shifts():
    batch = windows(8, 100, seed=1, real=[100, 100, 57, 3, 2, 100, 80, 10])
    out = T5Span(VOCAB).transform(batch, np.random.default_rng(1))
    for r in range(8):
        src = out["input_ids"][r][out["attention_mask"][r]].tolist()
        tgt = out["labels"][r][out["labels"][r] != IGNORE].tolist()
        original = batch["input_ids"][r][batch["attention_mask"][r]].tolist()
        assert recover_t5(src, tgt) == original
        sentinels = [t for t in src if t in SENTINELS]
        assert sentinels == list(SENTINELS[:len(sentinels)])  # in order, each once
        dec = out["decoder_input_ids"][r][: len(tgt)].tolist()
        assert dec == [BOS] + tgt[:-1]


def test_t5_noise_statistics():
    """Exactly round(n * density) noise tokens in round(noise / 3) spans; each split of the
    noise into spans is uniform, so the first span's length follows the exact
    combinatorial law P(L = l) = C(N - l - 1, k - 2) / C(N - 1, k - 1)."""
    rng = np.random.default_rng(0)
    n, trials = 200, 4000
    firsts, means = [], []
    for _ in range(trials):
        clean, noise = noise_spans(n, 0.15, 3.0, rng)
        assert noise.sum() == 30 and len(noise) == 10 and clean.sum() == 170 and (noise > 0).all()
        assert (clean > 0).all()
        firsts.append(noise[0])
        means.append(noise.mean())
    assert np.mean(means) == pytest.approx(3.0)
    big_n, k = 30, 10
    law = np.array([math.comb(big_n - length - 1, k - 2) / math.comb(big_n - 1, k - 1) for length in range(1, 22)])
    counts = np.bincount(firsts, minlength=22)[1:22]
    keep = law * trials > 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(law[keep], law[~keep].sum()) * trials
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3


def test_t5_needs_sentinels():
    with pytest.raises(ConfigError, match="extra_id"):
        T5Span(Vocab(V, (PAD, BOS, EOS, MASK), PAD, MASK, BOS, EOS))
    with pytest.raises(ConfigError, match="sentinels"):
        few = Vocab(V, (PAD, BOS, EOS, MASK, 4, 5), PAD, MASK, BOS, EOS, (4, 5))
        T5Span(few).transform(windows(1, 200), np.random.default_rng(0))


# ---- bart ---------------------------------------------------------------------
def test_poisson_span_lengths():
    rng = np.random.default_rng(0)
    drawn = []
    for to_mask in (30, 7, 1):
        assert span_lengths(to_mask, 3.0, rng).sum() == to_mask
    for _ in range(8):  # long runs: the one cut (and length-biased) span per run is negligible
        lengths = span_lengths(3000, 3.0, rng)
        assert lengths.sum() == 3000 and (lengths >= 0).all()
        drawn += lengths[:-1].tolist()
    counts = np.bincount(drawn, minlength=12)
    pmf = stats.poisson(3.0).pmf(np.arange(12))
    observed = np.append(counts[:11], counts[11:].sum())
    expected = np.append(pmf[:11], 1 - pmf[:11].sum()) * len(drawn)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert counts[0] > 0.04 * len(drawn)  # 0-length spans (insertions) occur, e^-3 = 5 %


def test_infilling_one_mask_per_span_and_uniform_placement():
    rng = np.random.default_rng(1)
    ids = np.arange(200, 300)
    first, expected = [], []
    for _ in range(2000):
        out, lengths, dropped = infill(ids, 0.3, 3.0, MASK, rng)
        assert dropped == 0 and lengths.sum() == 30
        assert (out == MASK).sum() == len(lengths)  # one <mask> per span, 0-length ones included
        assert len(out) == 100 - 30 + len(lengths)
        kept = out[out != MASK]
        assert (np.diff(kept) > 0).all() and len(kept) == 70  # the rest stays, in order
        first.append(int(np.flatnonzero(out == MASK)[0]))
        expected.append(70 / (len(lengths) + 1))  # E[min of k uniform slots among 70 + k]
    # spans sit uniformly among the kept tokens: the first one's position has the right mean
    assert abs(np.mean(first) - np.mean(expected)) < 4 * np.std(first) / math.sqrt(len(first))


def test_sentence_permutation_is_uniform_and_keeps_sentences():
    vocab = VOCAB
    obj = Denoise(vocab, {"mask_ratio": 0.0, "permute_sentences": 1.0})
    ids = np.array([BOS, 200, 201, 210, 211, 212, 220, EOS])
    starts = np.array([0, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert sentence_pieces(starts[1:-1]) == [(0, 2), (2, 5), (5, 6)]
    rng = np.random.default_rng(2)
    seen = {}
    for _ in range(3000):
        out = obj.corrupt(ids, starts, rng)
        assert out[0] == BOS and out[-1] == EOS and sorted(out.tolist()) == sorted(ids.tolist())
        seen[tuple(out.tolist())] = seen.get(tuple(out.tolist()), 0) + 1
    assert len(seen) == 6
    assert stats.chisquare(list(seen.values())).pvalue > 1e-3


@pytest.mark.parametrize("option, check", [
    ("delete_prob", lambda ids, out: 1 - (len(out) - 2) / (len(ids) - 2)),
    ("token_mask_prob", lambda ids, out: (out == MASK).mean() * len(out) / (len(ids) - 2)),
])
def test_token_deletion_and_masking_rates(option, check):
    obj = Denoise(VOCAB, {"mask_ratio": 0.0, "permute_sentences": 0.0, option: 0.2})
    ids = np.concatenate([[BOS], np.arange(200, 398), [EOS]])
    rng = np.random.default_rng(3)
    rates = [check(ids, obj.corrupt(ids, None, rng)) for _ in range(400)]
    sd = math.sqrt(0.2 * 0.8 / (198 * 400))
    assert abs(np.mean(rates) - 0.2) < 4 * sd


def test_rotation_rate_and_uniform_offset():
    obj = Denoise(VOCAB, {"mask_ratio": 0.0, "permute_sentences": 0.0, "rotate_prob": 0.5})
    ids = np.concatenate([[BOS], np.arange(200, 210), [EOS]])
    rng = np.random.default_rng(4)
    offsets = []
    for _ in range(4000):
        out = obj.corrupt(ids, None, rng)
        assert out[0] == BOS and out[-1] == EOS
        offsets.append(int(out[1] - 200))
    counts = np.bincount(offsets, minlength=10)
    # offset 0: not rotated (p 0.5) or rotated by 0 (0.5 / 10)
    assert abs(counts[0] / 4000 - 0.55) < 4 * math.sqrt(0.55 * 0.45 / 4000)
    assert stats.chisquare(counts[1:]).pvalue > 1e-3


def test_bart_target_is_the_original_and_input_fits_the_window():
    obj = Denoise(VOCAB, {"mask_ratio": 0.3, "permute_sentences": 1.0, "token_mask_prob": 0.1,
                          "delete_prob": 0.1, "rotate_prob": 0.5})
    batch = windows(6, 40, seed=5, real=[40, 40, 20, 3, 40, 9])
    batch["sentence_starts"] = np.random.default_rng(5).random((6, 40)) < 0.2
    out = obj.transform(batch, np.random.default_rng(5))
    assert out["input_ids"].shape == (6, 40) and out["labels"].shape == (6, 40)
    for r in range(6):
        original = batch["input_ids"][r][batch["attention_mask"][r]].tolist()
        assert out["labels"][r][out["labels"][r] != IGNORE].tolist() == original
        assert out["decoder_input_ids"][r][: len(original)].tolist() == [BOS] + original[:-1]
    with pytest.raises(Exception, match="sentence_starts"):
        Denoise(VOCAB).transform(windows(1, 10), np.random.default_rng(0))


def test_insertions_never_overflow_the_window():
    rng = np.random.default_rng(6)
    for _ in range(500):
        ids = np.arange(200, 204)
        out, lengths, dropped = infill(ids, 0.3, 0.2, MASK, rng, room=4)  # lambda 0.2: mostly 0-length
        assert len(out) <= 4


# ---- mass ----------------------------------------------------------------------
def test_mass_fragment_statistics_and_recovery():
    obj = Mass(VOCAB)
    batch = windows(2000, 21, seed=7)
    batch["input_ids"][:, 0], batch["input_ids"][:, -1] = BOS, EOS
    out = obj.transform(batch, np.random.default_rng(7))
    src, dec, labels = out["input_ids"].numpy(), out["decoder_input_ids"].numpy(), out["labels"].numpy()
    scored = labels != IGNORE
    assert (scored.sum(1) == 10).all()  # round(0.5 * 19) = 10 of the 19 inner tokens
    assert (src[:, 0] == BOS).all() and (src[:, -1] == EOS).all()
    starts = scored.argmax(1)
    assert starts.min() == 1 and starts.max() == 10
    assert stats.chisquare(np.bincount(starts, minlength=11)[1:]).pvalue > 1e-3  # uniform start
    for r in range(20):
        original = batch["input_ids"][r]
        filled = np.where(scored[r], labels[r], src[r])
        assert (filled == original).all() and (src[r][scored[r]] == MASK).all()
        a, b = np.flatnonzero(scored[r])[[0, -1]]
        assert dec[r][a] == MASK and (dec[r][a + 1:b + 1] == original[a:b]).all()
        assert (dec[r][~scored[r]] == MASK).all()  # other positions masked


# ---- the presets' tokenizers ---------------------------------------------------------
TEXTS = [f"The {a} met the {b} by the river, and the {b} spoke first." for a in ("cat", "dog", "owl", "fox")
         for b in ("king", "queen", "miller", "smith", "baker")] * 5


def test_t5_and_bart_tokenizers_train_save_and_load(tmp_path):
    """The t5 presets train a unigram (SentencePiece-style) vocabulary whose <extra_id_N>
    sentinels are single tokens; the bart presets a byte-level BPE with <s> <pad> </s> <mask>.
    Both reload from tokenizer.json and give the objectives what they need."""
    from sesame.config import load_config
    from sesame.tokenize import load_tokenizer, train_tokenizer

    t5 = train_tokenizer(texts=TEXTS, config=load_config("t5-small").tokenizer, vocab_size=160, min_frequency=1)
    bart = train_tokenizer(texts=TEXTS, config=load_config("bart-base").tokenizer, vocab_size=300, min_frequency=1)
    assert t5.kind == "unigram" and bart.kind == "bpe"
    for tok, name in ((t5, "t5"), (bart, "bart")):
        tok.save(tmp_path / f"{name}.json")
        again = load_tokenizer(tmp_path / f"{name}.json")
        assert again.encode(TEXTS[3]).ids == tok.encode(TEXTS[3]).ids
        assert again.decode(tok.encode(TEXTS[3]).ids).strip() == TEXTS[3]
    v = Vocab.from_tokenizer(t5)
    assert len(v.sentinel_ids) == 100 and v.start_id == t5.pad_id == 0 and v.end_id == t5.token_to_id("</s>")
    assert t5.encode("the <extra_id_7> river").ids.count(t5.token_to_id("<extra_id_7>")) == 1
    b = Vocab.from_tokenizer(bart)
    assert b.start_id == bart.token_to_id("<s>") and b.end_id == bart.token_to_id("</s>") and b.mask_id is not None
    T5Span(v)
    Denoise(b)
    Mass(b)
