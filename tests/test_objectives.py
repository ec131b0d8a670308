"""Objectives: masking statistics (tested statistically), labels, CLM shifting."""
import math

import numpy as np
import pytest
import torch

from sesame.config import ModelConfig
from sesame.errors import ConfigError
from sesame.objectives import CLM, IGNORE, MLM, Vocab
from sesame.objectives.clm import document_positions

VOCAB = Vocab(size=1000, special_ids=(0, 1, 2, 3, 4), pad_id=0, mask_id=4)


def within(observed: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("mask_prob, replace_mask, replace_random", [(0.15, 0.8, 0.1), (0.3, 0.5, 0.25)])
def test_mlm_rates_match_the_config(mask_prob, replace_mask, replace_random):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, (400, 256))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    ids[::3, 200:] = 0  # padding
    task = MLM(VOCAB, {"mask_prob": mask_prob, "replace_mask": replace_mask, "replace_random": replace_random})
    out = task.transform({"input_ids": ids}, np.random.default_rng(1))
    new, labels = out["input_ids"].numpy(), out["labels"].numpy()
    special = np.isin(ids, VOCAB.special_ids)
    selected = labels != IGNORE
    n_eligible, n_sel = int((~special).sum()), int(selected.sum())
    assert not selected[special].any(), "special or padding tokens were selected"
    assert within(n_sel / n_eligible, mask_prob, n_eligible)
    assert np.array_equal(labels[selected], ids[selected]), "labels must be the original tokens"
    masked = selected & (new == VOCAB.mask_id)
    kept = selected & (new == ids)
    randomised = selected & ~masked & ~kept
    # a random replacement can hit the original token: P = 1/995 of the random share
    p_keep = 1 - replace_mask - replace_random + replace_random / 995
    assert within(masked.sum() / n_sel, replace_mask, n_sel)
    assert within(kept.sum() / n_sel, p_keep, n_sel)
    assert within(randomised.sum() / n_sel, replace_random - replace_random / 995, n_sel)
    assert not np.isin(new[randomised], VOCAB.special_ids).any(), "random replacements must not be special"
    assert np.array_equal(new[~selected], ids[~selected]), "unselected tokens must be untouched"
    # random replacements are uniform over the normal vocabulary (chi-square over 10 bins)
    counts = np.histogram(new[randomised], bins=10, range=(5, 1000))[0]
    expected = counts.sum() / 10
    assert ((counts - expected) ** 2 / expected).sum() < 30  # chi2(9) p < 0.001 at 27.9


def test_mlm_masks_are_dynamic_and_reproducible():
    ids = np.random.default_rng(0).integers(5, 1000, (8, 64))
    task = MLM(VOCAB)
    a = task.transform({"input_ids": ids}, np.random.default_rng([0, 1]))["labels"]
    b = task.transform({"input_ids": ids}, np.random.default_rng([0, 1]))["labels"]
    c = task.transform({"input_ids": ids}, np.random.default_rng([0, 2]))["labels"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mlm_loss_is_a_sum_over_selected_tokens():
    cfg = ModelConfig(vocab_size=1000, hidden=32, layers=1, num_heads=2, intermediate=32, max_positions=64,
                      heads=["mlm"])
    task = MLM(VOCAB)
    module = task.build(cfg)
    batch = task.transform({"input_ids": np.random.default_rng(0).integers(5, 1000, (4, 32))},
                           np.random.default_rng(0))
    out = module(batch)
    assert out.count == task.count(batch) > 0
    assert abs(out.loss.item() / out.count - math.log(1000)) < 0.5  # untrained: about ln V per token
    assert 0 <= out.metrics["accuracy"][0] <= out.count
    with pytest.raises(ConfigError, match="needs a bidirectional encoder"):
        task.build(cfg.replace(arch="decoder", heads=["lm"]))
    with pytest.raises(ConfigError, match="smaller than the tokenizer"):
        task.build(cfg.replace(vocab_size=500))


def test_clm_labels_shift_and_stop_at_document_edges():
    ids = np.array([[10, 11, 12, 20, 21, 22, 23]])
    docs = np.array([[0, 0, 0, 1, 1, 1, 1]])
    task = CLM(Vocab(100))
    out = task.transform({"input_ids": ids, "doc_ids": docs}, np.random.default_rng(0))
    assert out["labels"].tolist() == [[11, 12, IGNORE, 21, 22, 23, IGNORE]]
    assert out["positions"].tolist() == [[0, 1, 2, 0, 1, 2, 3]]
    flat = CLM(Vocab(100), {"within_documents": False}).transform({"input_ids": ids, "doc_ids": docs},
                                                                   np.random.default_rng(0))
    assert flat["labels"].tolist() == [[11, 12, 20, 21, 22, 23, IGNORE]] and "doc_ids" not in flat
    padded = task.transform({"input_ids": ids, "attention_mask": np.array([[1, 1, 1, 1, 1, 0, 0]])},
                            np.random.default_rng(0))
    assert padded["labels"].tolist() == [[11, 12, 20, 21, IGNORE, IGNORE, IGNORE]]
    assert document_positions(np.array([[3, 3, 5, 5, 5, 9]])).tolist() == [[0, 1, 0, 1, 2, 0]]


def test_clm_packed_loss_equals_separate_documents():
    cfg = ModelConfig(arch="decoder", vocab_size=100, hidden=32, layers=2, num_heads=4, intermediate=32,
                      max_positions=64, heads=["lm"], prenorm=True, embedding_norm=False, type_vocab_size=0,
                      dropout=0.0, attention_dropout=0.0)
    task = CLM(Vocab(100))
    module = task.build(cfg).eval()
    a, b = np.arange(10, 16)[None], np.arange(30, 35)[None]
    packed = task.transform({"input_ids": np.concatenate([a, b], 1), "doc_ids": np.array([[0] * 6 + [1] * 5])},
                            np.random.default_rng(0))
    together = module(packed)
    apart = [module(task.transform({"input_ids": x}, np.random.default_rng(0))) for x in (a, b)]
    assert together.count == sum(o.count for o in apart) == 9
    torch.testing.assert_close(together.loss, sum(o.loss for o in apart), atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="needs a causal decoder"):
        task.build(cfg.replace(arch="encoder", heads=["mlm"]))
