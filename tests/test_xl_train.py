"""Recurrent (Transformer-XL) training: consecutive segments per stream, memory carried
across steps, and resume restoring the memories exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sesame.config.model import ModelConfig
from sesame.config.train import TrainConfig
from sesame.data.streams import SegmentStreams
from sesame.errors import DataError
from sesame.objectives import Vocab
from sesame.objectives.xl_clm import XLCLM
from sesame.train import Trainer, read_metrics

V = 37


def model_config(mem_len=8, **kw):
    return ModelConfig.from_dict(dict(arch="decoder", heads=["lm"], vocab_size=V, hidden=16, num_heads=2, layers=2,
                                      intermediate=24, position="none", attention="xl", type_vocab_size=0,
                                      dropout=0.0, attention_dropout=0.0, mem_len=mem_len, **kw))


def tokens(n=400, seed=0):
    return np.random.default_rng(seed).integers(0, V, n)


def test_streams_are_consecutive_and_parts_split_them():
    toks = tokens(203)
    src = SegmentStreams(toks, streams=4, seg_len=5)  # 50 tokens per stream, 10 segments
    assert src.segments == 10
    a, b = src.batch(3, 0, 1, 0, 1), src.batch(4, 0, 1, 0, 1)
    assert np.array_equal(a["targets"][:, -1], b["input_ids"][:, 0])  # segment 4 continues segment 3
    assert np.array_equal(a["input_ids"][:, 1:], a["targets"][:, :-1])
    assert np.array_equal(a["input_ids"][2], toks[2 * 50 + 15: 2 * 50 + 20])
    halves = [src.batch(3, m, 2, 0, 1) for m in range(2)]
    assert np.array_equal(np.concatenate([h["input_ids"] for h in halves]), a["input_ids"])
    assert [list(h["stream"]) for h in halves] == [[0, 1], [2, 3]]
    assert src.batch(10, 0, 1, 0, 1)["segment"] == 0  # the next epoch starts the streams afresh
    with pytest.raises(DataError, match="streams"):
        SegmentStreams(tokens(20), streams=4, seg_len=8)


def test_training_path_equals_the_concatenation():
    """Segment 2's loss through the module (memory from step 1) = the loss of those tokens
    when the whole stream is processed at once."""
    torch.manual_seed(0)
    task = XLCLM(Vocab(V))
    module = task.build(model_config(mem_len=6)).eval()
    toks = tokens(2 * 12 + 1)
    src = SegmentStreams(toks, streams=2, seg_len=6)
    with torch.no_grad():
        outs = [module(task.transform(src.batch(s, 0, 1, 0, 1), None)) for s in (0, 1)]
        full = torch.as_tensor(toks[:-1][: 2 * 12]).view(2, 12)
        logits = module.model(full).logits["lm"][:, 6:]
        target = torch.as_tensor(toks[1:][: 2 * 12]).view(2, 12)[:, 6:]
        ref = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum")
    assert abs(outs[1].loss.item() - ref.item()) < 1e-4
    # without memory the second segment's loss is another number: the memory is used
    plain = XLCLM(Vocab(V)).build(model_config(mem_len=0)).eval()
    plain.load_state_dict(module.state_dict(), strict=False)
    with torch.no_grad():
        alone = plain(task.transform(src.batch(1, 0, 1, 0, 1), None))
    assert abs(alone.loss.item() - ref.item()) > 1e-3


class Stop(Exception):
    pass


def _trainer(run_dir, src, stop_at=None):
    cfg = TrainConfig.from_dict(dict(steps=8, batch_size=4, micro_batch_size=2, lr=3e-3, warmup=1, log_every=1,
                                     save_every=3, keep=0, device="cpu", threads=1, deterministic=True))

    def on_step(step):
        if step == stop_at:
            raise Stop

    return Trainer(XLCLM(Vocab(V)), model_config(), cfg, src, run_dir, progress=False, on_step=on_step)


def test_resume_restores_the_memories_exactly(tmp_path):
    toks = tokens(4 * 8 * 6 + 1)
    full = _trainer(tmp_path / "full", SegmentStreams(toks, 4, 8))
    full.fit()
    with pytest.raises(Stop):  # the run dies during step 5, after its checkpoint of step 3
        _trainer(tmp_path / "run", SegmentStreams(toks, 4, 8), stop_at=4).fit()
    saved = load_file(str(tmp_path / "run/checkpoints/step-000003/model.safetensors"))
    assert saved["_extra_state"].shape == (2, 4, 8, 16)  # layers, streams, mem_len, hidden
    assert saved["_extra_state"].abs().sum() > 0
    again = _trainer(tmp_path / "run", SegmentStreams(toks, 4, 8))
    again.fit(resume=True)
    want = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "full") if "event" not in r}
    got = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "run") if "event" not in r}
    assert got == want
    assert torch.equal(again.module.banks[True], full.module.banks[True])
    for (k, a), b in zip(full.module.state_dict().items(), again.module.state_dict().values()):
        assert torch.equal(a, b), k
