"""XLNet's permutation LM: orders, partial prediction, span sampling statistics, the masks
(brute force), no leakage through the full two-stream model, and a tiny real run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sesame.config.model import ModelConfig
from sesame.models.model import build_model
from sesame.nn.attention.two_stream import order_layouts
from sesame.nn.layout import Layout
from sesame.objectives import Vocab
from sesame.objectives.plm import PLM, span_order

V = 40


def xlnet_config(**kw):
    base = dict(arch="encoder", heads=["lm"], vocab_size=V, hidden=16, num_heads=2, layers=2, intermediate=24,
                position="none", attention="xl", relative_segments=True, two_stream=True, type_vocab_size=0,
                attention_bias=False, lm_bias=True, embedding_norm=False, dropout=0.0, attention_dropout=0.0)
    base.update(kw)
    return ModelConfig.from_dict(base)


def _batch(b=4, t=11):
    rng = np.random.default_rng(0)
    mask = np.ones((b, t), dtype=bool)
    mask[1, 8:] = False
    return {"input_ids": rng.integers(1, V, (b, t)), "attention_mask": mask}


@pytest.mark.parametrize("k", [1, 3, 6])
def test_partial_prediction_takes_the_last_ceil_n_over_k(k):
    task = PLM(Vocab(V), {"k": k})
    raw = _batch()
    out = task.transform(raw, np.random.default_rng(1))
    order, tm, labels = out["order"], out["target_mapping"], out["labels"]
    for row in range(4):
        n = int(raw["attention_mask"][row].sum())
        real = np.flatnonzero(raw["attention_mask"][row])
        ranks = order[row, real].numpy()
        assert sorted(ranks) == list(range(1, n + 1))  # a permutation of the real tokens
        want = set(real[ranks > n - math.ceil(n / k)])
        got = set(tm[row].argmax(-1)[tm[row].sum(-1) > 0].tolist())
        assert got == want and len(got) == math.ceil(n / k)
        assert set(labels[row][labels[row] >= 0].tolist()) <= set(raw["input_ids"][row].tolist())
    assert task.count(out) == sum(math.ceil(int(m.sum()) / k) for m in raw["attention_mask"])


def test_span_sampling_statistics():
    rng = np.random.default_rng(2)
    n, max_span, p = 400, 5, 1 / 6
    fractions, lengths = [], []
    for _ in range(200):
        rank, targets = span_order(n, max_span, p, rng)
        fractions.append(len(targets) / n)
        for r in set(rank[targets].tolist()):  # each rank is one contiguous span
            where = np.flatnonzero(rank == r)
            assert where[-1] - where[0] + 1 == len(where) <= max_span
            lengths.append(len(where))
    contexts = [int(L / p) for L in range(1, max_span + 1)]
    expected = np.mean(range(1, max_span + 1)) / np.mean(contexts)  # renewal-reward: E[L] / E[context]
    assert abs(np.mean(fractions) - expected) < 0.01
    assert abs(np.mean(lengths) - 3.0) < 0.1  # U{1..5}


def test_masks_realise_the_order_brute_force():
    rng = np.random.default_rng(3)
    b, t = 3, 6
    order = torch.as_tensor(np.stack([rng.permutation(t) for _ in range(b)]))
    order[2, :3] = 0  # ties (a span / the non-targets of span sampling)
    pad = torch.ones(b, t, dtype=torch.bool)
    pad[1, -2:] = False
    for mem, padding in ((0, pad), (2, None)):  # memory keys come first and are visible to all
        content, query = order_layouts(order, padding)
        cm, qm = content.dense(t, t + mem, None).squeeze(1), query.dense(t, t + mem, None).squeeze(1)
        for r in range(b):
            for i in range(t):
                for j in range(t + mem):
                    if j < mem:
                        assert cm[r, i, j] and qm[r, i, j]
                        continue
                    jj = j - mem
                    visible = padding is None or bool(padding[r, jj])
                    assert bool(cm[r, i, j]) == (visible and bool(order[r, jj] <= order[r, i]))
                    assert bool(qm[r, i, j]) == (visible and bool(order[r, jj] < order[r, i]))
    assert "order" in content.features() and Layout().features() == set()


def test_no_query_stream_position_sees_its_own_or_later_content():
    torch.manual_seed(0)
    task = PLM(Vocab(V), {"k": 2})
    model = build_model(xlnet_config()).eval()
    raw = {"input_ids": np.random.default_rng(4).integers(1, V, (1, 8))}
    batch = task.transform(raw, np.random.default_rng(5))
    order = batch["order"][0]
    content, query = order_layouts(batch["order"], batch["attention_mask"])

    def logits(ids):
        with torch.no_grad():
            return model(ids, layout=content, query_layout=query, target_mapping=batch["target_mapping"]).logits["lm"]

    base = logits(batch["input_ids"])
    targets = batch["target_mapping"][0].argmax(-1)
    for m, pos in enumerate(targets.tolist()):
        later = (order >= order[pos]).nonzero().flatten()  # its own token and everything after it
        changed = batch["input_ids"].clone()
        changed[0, later] = (changed[0, later] + 7) % V
        assert torch.allclose(logits(changed)[0, m], base[0, m], atol=1e-6)
        earlier = (order < order[pos]).nonzero().flatten()
        if len(earlier):
            changed = batch["input_ids"].clone()
            changed[0, earlier] = (changed[0, earlier] + 7) % V
            assert not torch.allclose(logits(changed)[0, m], base[0, m], atol=1e-4)


def test_bi_data_reverses_the_second_half_and_marks_it_backward():
    from sesame.errors import ConfigError

    batch = _batch(b=5)
    batch["token_type_ids"] = np.tile(np.arange(11), (5, 1))
    out = PLM(Vocab(V), {"bi_data": True}).transform(dict(batch), np.random.default_rng(0))
    assert out["backward"].tolist() == [False, False, False, True, True]  # b - b // 2 rows forward
    ids, real = batch["input_ids"], batch["attention_mask"]
    for row in range(5):
        pos = np.flatnonzero(real[row])
        want = ids[row, pos[::-1]] if row >= 3 else ids[row, pos]
        assert out["input_ids"][row, pos].tolist() == want.tolist()
        assert out["token_type_ids"][row, pos].tolist() == (pos[::-1] if row >= 3 else pos).tolist()
    picked = (out["target_mapping"] @ out["input_ids"][:, :, None].float())[..., 0].long()
    keep = out["labels"] != -100
    assert torch.equal(picked[keep], out["labels"][keep])  # targets read the reversed rows
    module = PLM(Vocab(V), {"bi_data": True}).build(xlnet_config())
    result = module(out)
    result.loss.backward()
    assert torch.isfinite(result.loss) and module.model.body.layers[0].attn.kernel.r.weight.grad.abs().sum() > 0
    assert "backward" in PLM(Vocab(V), {"bi_data": True}).needs and "backward" not in PLM(Vocab(V)).needs
    with pytest.raises(ConfigError, match="cannot honour backward .a backward stream"):  # only xl encodes it
        build_model(xlnet_config(attention="full", relative_segments=False, two_stream=False, heads=["mlm"]),
                    needed={"backward"})


def test_tiny_pretraining_on_real_text_lowers_the_loss(shared_data):
    text = (shared_data / "corpora/en/tinyshakespeare/input.txt").read_bytes()[:200_000]
    ids = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    windows = ids[: (len(ids) // 32) * 32].reshape(-1, 32)
    torch.manual_seed(0)
    task = PLM(Vocab(256), {"k": 4})
    module = task.build(xlnet_config(vocab_size=256, hidden=32, num_heads=2, intermediate=48))
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(25):
        rows = windows[rng.integers(0, len(windows), 8)]
        out = module(task.transform({"input_ids": rows}, rng))
        loss = out.loss / out.count
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_xlnet_base_preset_has_the_published_size():
    from sesame.config.run import load_config

    cfg = load_config("xlnet-base").model
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.num_parameters() == 116_718_336 + 32_000  # HF xlnet-base-cased + the LM head bias
