"""mask-plm: targets as [MASK], predicted in a random order through attention masks, with
the earlier targets visible as original tokens (copies at their positions)."""
from __future__ import annotations

import numpy as np
import torch

from sesame.config.model import ModelConfig
from sesame.nn.layout import Layout
from sesame.objectives import Vocab
from sesame.objectives.mask_plm import MaskPLM, mask_plm_mask

V, MASK = 40, 3
VOCAB = Vocab(V, special_ids=(0, 1, 2, 3), pad_id=0, mask_id=MASK)


def encoder(**kw):
    base = dict(vocab_size=V, hidden=16, num_heads=2, layers=2, intermediate=24, max_positions=16, dropout=0.0,
                attention_dropout=0.0)
    return ModelConfig.from_dict({**base, **kw})


def test_visibility_brute_force():
    t, targets, m = 7, np.array([5, 1, 3]), 4
    vis = mask_plm_mask(t, targets, m)
    rank = {int(p): r for r, p in enumerate(targets)}
    copy_of = {t + r: int(p) for r, p in enumerate(targets)}
    for i in range(t + m):
        for j in range(t + m):
            j_context = j < t and j not in rank
            if i >= t + len(targets):  # padding row
                want = False
            elif i < t and i not in rank:  # context
                want = j_context
            elif i < t:  # the [MASK] of target i
                want = j_context or j == i or (j in copy_of and rank[copy_of[j]] < rank[i])
            else:  # a copy
                want = j_context or (j in copy_of and rank[copy_of[j]] <= rank[copy_of[i]])
            assert vis[i, j] == want, (i, j)


def test_target_rate_and_layout():
    task = MaskPLM(VOCAB, {"mask_prob": 0.15})
    rng = np.random.default_rng(0)
    ids = rng.integers(4, V, (64, 40))
    ids[:, 0] = 1  # a special token is never a target
    out = task.transform({"input_ids": ids}, rng)
    sel = out["labels"][:, :40] >= 0
    assert not sel[:, 0].any()
    rate = sel.float().mean().item() * 40 / 39
    assert abs(rate - 0.15) < 0.02  # 64 x 39 Bernoulli(0.15) trials: sd ~0.007
    k = sel.sum(1)
    for row in range(64):  # copies carry the original tokens at their targets' positions
        pos = out["positions"][row, 40:40 + int(k[row])]
        assert torch.equal(out["input_ids"][row, 40:40 + int(k[row])], torch.as_tensor(ids[row])[pos])
        assert (out["input_ids"][row, :40][sel[row]] == MASK).all()


def test_no_target_sees_its_own_or_later_tokens():
    torch.manual_seed(0)
    task = MaskPLM(VOCAB, {"mask_prob": 0.4})
    module = task.build(encoder()).eval()
    ids = np.random.default_rng(1).integers(4, V, (1, 10))
    rng_state = np.random.default_rng(2)
    batch = task.transform({"input_ids": ids}, rng_state)
    targets = batch["positions"][0, 10:][batch["input_ids"][0, 10:] != 0].tolist()
    assert len(targets) >= 2

    def logits(raw):
        b = task.transform({"input_ids": raw}, np.random.default_rng(2))  # same targets and order
        with torch.no_grad():
            return module.model(b["input_ids"], layout=Layout(mask=b["visible"][:, None]),
                                positions=b["positions"]).logits["mlm"][0]

    base = logits(ids)
    for rank, pos in enumerate(targets):
        changed = ids.copy()
        changed[0, targets[rank:]] = (changed[0, targets[rank:]] - 4 + 7) % (V - 4) + 4
        assert torch.allclose(logits(changed)[pos], base[pos], atol=1e-6)
        if rank:
            changed = ids.copy()
            changed[0, targets[:rank]] = (changed[0, targets[:rank]] - 4 + 7) % (V - 4) + 4
            assert not torch.allclose(logits(changed)[pos], base[pos], atol=1e-4)


def test_tiny_run_lowers_the_loss(shared_data):
    text = (shared_data / "corpora/en/tinyshakespeare/input.txt").read_bytes()[:100_000]
    windows = np.frombuffer(text, dtype=np.uint8).astype(np.int64)[: 3000 * 16].reshape(-1, 16) + 4
    torch.manual_seed(0)
    task = MaskPLM(Vocab(260, special_ids=(0, 1, 2, 3), pad_id=0, mask_id=MASK), {})
    module = task.build(encoder(vocab_size=260, hidden=32, intermediate=48))
    opt = torch.optim.AdamW(module.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(25):
        out = module(task.transform({"input_ids": windows[rng.integers(0, len(windows), 16)]}, rng))
        loss = out.loss / out.count
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses
