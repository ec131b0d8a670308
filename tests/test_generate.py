"""Decoding: cache on = cache off, padding invariance, beam search exactness,
sampling statistics."""
import itertools

import pytest
import torch

from sesame.config import ModelConfig
from sesame.errors import ConfigError, ShapeError
from sesame.generate import GenerateConfig, filter_logits, generate, penalise_repeats
from sesame.models import build_model

V = 40


def decoder(**kw):
    cfg = dict(arch="decoder", vocab_size=V, hidden=32, layers=2, num_heads=4, intermediate=48, max_positions=64,
               heads=["lm"], prenorm=True, embedding_norm=False, type_vocab_size=0, dropout=0.0,
               attention_dropout=0.0, position="rotary")
    cfg.update(kw)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**cfg)).eval()
    with torch.no_grad():  # sharper distributions than the tiny init gives
        model.body.embed.tokens.weight.mul_(20)
    return model


def uncached_greedy(model, ids, steps):
    out, logits = ids, []
    for _ in range(steps):
        step = model(out).logits["lm"][:, -1]
        logits.append(step)
        out = torch.cat([out, step.argmax(-1, keepdim=True)], 1)
    return out, logits


@pytest.mark.parametrize("position", ["rotary", "learned", "alibi"])
def test_cached_greedy_equals_uncached(position):
    model = decoder(position=position)
    ids = torch.randint(0, V, (3, 5))
    res = generate(model, ids, max_new_tokens=8, keep_logits=True)
    want, want_logits = uncached_greedy(model, ids, 8)
    assert torch.equal(res.sequences, want)
    for got, ref in zip(res.step_logits, want_logits):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_left_padded_batch_equals_prompts_alone():
    model = decoder()
    a, b = torch.randint(1, V, (1, 6)), torch.randint(1, V, (1, 3))
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], 1)])
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    res = generate(model, batch, mask, max_new_tokens=6)
    assert res.new_tokens[0] == generate(model, a, max_new_tokens=6).new_tokens[0]
    assert res.new_tokens[1] == generate(model, b, max_new_tokens=6).new_tokens[0]
    with pytest.raises(ShapeError, match="LEFT-padded"):
        generate(model, batch.flip(1), mask.flip(1))


def test_encoder_decoder_generation_uses_the_cache_correctly():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="encoder-decoder", vocab_size=V, hidden=32, layers=2, num_heads=4,
                                    intermediate=48, max_positions=64, heads=["lm"], type_vocab_size=0,
                                    prenorm=True, dropout=0.0, attention_dropout=0.0)).eval()
    src = torch.randint(1, V, (2, 7))
    res = generate(model, src, max_new_tokens=5, start_id=1)
    tgt = torch.ones(2, 1, dtype=torch.long)
    for _ in range(5):
        nxt = model(src, decoder_input_ids=tgt).logits["lm"][:, -1].argmax(-1, keepdim=True)
        tgt = torch.cat([tgt, nxt], 1)
    assert torch.equal(res.sequences, tgt[:, 1:])
    beam = generate(model, src, max_new_tokens=4, start_id=1, strategy="beam", num_beams=3)
    assert beam.sequences.shape[0] == 2


def test_beam_search_is_exact_when_the_beam_holds_every_prefix():
    model = decoder(vocab_size=6)
    ids = torch.randint(0, 6, (1, 4))
    res = generate(model, ids, strategy="beam", num_beams=36, max_new_tokens=3, length_penalty=0.0,
                   early_stopping=False)
    best, best_score = None, float("-inf")
    for seq in itertools.product(range(6), repeat=3):
        full = torch.cat([ids, torch.tensor([seq])], 1)
        logp = model(full[:, :-1]).logits["lm"].log_softmax(-1)[0, 3:]
        score = logp.gather(1, torch.tensor(seq)[:, None]).sum().item()
        if score > best_score:
            best, best_score = list(seq), score
    assert res.new_tokens[0] == best
    assert abs(res.scores[0].item() - best_score) < 1e-4


def test_beam_of_one_is_greedy_and_beams_score_at_least_greedy():
    model = decoder()
    ids = torch.randint(0, V, (2, 4))
    greedy = generate(model, ids, max_new_tokens=6)
    one = generate(model, ids, strategy="beam", num_beams=1, max_new_tokens=6, length_penalty=0.0)
    assert one.new_tokens == greedy.new_tokens
    four = generate(model, ids, strategy="beam", num_beams=4, max_new_tokens=6, length_penalty=0.0)
    assert torch.all(four.scores >= greedy.scores - 1e-5)


def test_stop_tokens_end_rows_and_pad_the_rest():
    model = decoder()
    ids = torch.randint(0, V, (4, 3))
    free = generate(model, ids, max_new_tokens=6)
    stop = free.new_tokens[0][1]
    end = free.new_tokens[0].index(stop) + 1
    res = generate(model, ids, max_new_tokens=6, stop_ids=[stop], pad_id=0)
    assert res.new_tokens[0] == free.new_tokens[0][:end]
    row = res.sequences[0, 3:].tolist()
    assert row[:end] == free.new_tokens[0][:end] and all(t == 0 for t in row[end:])


def test_sampling_follows_the_temperature_scaled_distribution():
    model = decoder()
    ids = torch.randint(0, V, (1, 4))
    probs = (model(ids).logits["lm"][0, -1] / 2.0).softmax(-1)
    n = 4000
    res = generate(model, ids.expand(n, -1), strategy="sample", temperature=2.0, max_new_tokens=1, seed=0)
    counts = torch.bincount(res.sequences[:, -1], minlength=V).float()
    expected = probs * n
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
    assert chi2 < 2 * keep.sum().item() + 30, chi2  # far below any real mismatch


def test_top_k_top_p_and_repetition_penalty():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [[False, False, True, True, True]]
    p = logits.softmax(-1)[0]
    kept = ~torch.isinf(filter_logits(logits, 0, float(p[0] + p[1]) - 1e-3))
    assert kept.tolist() == [[True, True, False, False, False]]
    assert (~torch.isinf(filter_logits(logits, 0, 1e-6))).sum() == 1  # the top token always survives
    pen = penalise_repeats(logits, torch.tensor([[0, 4]]), 2.0)
    assert pen.tolist() == [[1.5, 2.0, 1.0, 0.0, -2.0]]
    model = decoder()
    ids = torch.randint(0, V, (1, 4))
    top1 = generate(model, ids, strategy="sample", top_k=1, max_new_tokens=5, seed=3)
    assert top1.new_tokens == generate(model, ids, max_new_tokens=5).new_tokens
    with pytest.raises(ConfigError):
        GenerateConfig(strategy="nucleus").validate()
