"""XLNet's permutation LM with Transformer-XL recurrence (``objective.options.streams``):
the memory is the previous segments' content, visible to both streams; the training path
carries it per stream and resumes it exactly; configs that cannot work are refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sesame.config.objective import ObjectiveConfig
from sesame.config.train import TrainConfig
from sesame.data.streams import SegmentStreams
from sesame.errors import ConfigError
from sesame.models.model import build_model
from sesame.nn.attention.two_stream import order_layouts
from sesame.objectives import Vocab
from sesame.objectives.compose import reads_streams
from sesame.objectives.plm import PLM, PLMModule, RecurrentPLMModule
from sesame.train import Trainer, read_metrics
from test_plm import V, xlnet_config


def test_memory_equals_the_concatenation_for_both_streams():
    """Segment 2 read over a memory of segment 1 gives the query stream's predictions of
    the concatenation in which segment 1 comes first in the order (rank 0: it sees only
    itself, as it did alone) and segment 2 keeps its own order."""
    torch.manual_seed(0)
    model = build_model(xlnet_config(mem_len=8, init_std=0.5)).eval()
    rng = np.random.default_rng(3)
    b, t = 2, 8
    seg1, seg2 = (torch.as_tensor(rng.integers(1, V, (b, t))) for _ in range(2))
    order2 = torch.as_tensor(np.stack([rng.permutation(t) + 1 for _ in range(b)]))
    m = 3  # predict the last 3 of each order
    targets = torch.topk(order2, m, dim=-1).indices
    tm = torch.zeros(b, m, t).scatter_(2, targets[..., None], 1.0)
    with torch.no_grad():
        memory = model.new_memory(8)
        model(seg1, layout=order_layouts(torch.zeros(b, t, dtype=torch.long))[0], cache=memory)
        content, query = order_layouts(order2, mem=memory.length)
        got = model(seg2, layout=content, query_layout=query, target_mapping=tm, cache=memory).logits["lm"]
        order = torch.cat([torch.zeros(b, t, dtype=torch.long), order2], 1)
        content, query = order_layouts(order)
        want = model(torch.cat([seg1, seg2], 1), layout=content, query_layout=query,
                     target_mapping=torch.cat([torch.zeros(b, m, t), tm], -1)).logits["lm"]
        without = model(seg2, layout=order_layouts(order2)[0], query_layout=order_layouts(order2)[1],
                        target_mapping=tm).logits["lm"]
    assert got.shape == (b, m, V)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - without).abs().max() > 1e-2  # the memory is read


def _streams(seed=0, streams=4, seg=8, segments=6):
    return SegmentStreams(np.random.default_rng(seed).integers(1, V, streams * seg * segments + 1), streams, seg)


def test_stream_plm_reads_and_writes_each_streams_memory():
    task = PLM(Vocab(V), {"streams": True, "k": 2})
    assert task.streams and PLM.reads_streams({"streams": True}) and not PLM.reads_streams({})
    torch.manual_seed(0)
    module = task.build(xlnet_config(mem_len=8, init_std=0.5))  # far from uniform: the memory shows
    assert isinstance(module, RecurrentPLMModule)
    src = _streams()
    batch0 = task.transform(src.batch(0, 0, 1, 0, 1), np.random.default_rng(0))
    assert "attention_mask" not in batch0 and batch0["segment"] == 0 and batch0["stream"] == [0, 1, 2, 3]
    assert (batch0["labels"] != -100).sum(1).tolist() == [4, 4, 4, 4]  # the last ceil(8 / 2) of each order
    module.eval()
    with torch.no_grad():
        module(batch0)
        assert module.banks[False].shape == (2, 4, 8, 16) and module.banks[False].abs().sum() > 0
        batch1 = task.transform(src.batch(1, 0, 1, 0, 1), np.random.default_rng(1))
        with_memory = module(batch1).loss
        plain = PLMModule(module.model).eval()  # the same weights, no memory
        without = plain(batch1).loss
    assert abs(with_memory.item() - without.item()) > 1e-3


def test_killed_stream_plm_run_resumes_with_its_memories(tmp_path):
    class Stop(Exception):
        pass

    def trainer(run_dir, stop_at=None):
        def on_step(step):
            if step == stop_at:
                raise Stop

        cfg = TrainConfig.from_dict(dict(steps=8, batch_size=4, micro_batch_size=2, lr=3e-3, warmup=1, log_every=1,
                                         save_every=3, keep=0, device="cpu", threads=1, deterministic=True))
        return Trainer(PLM(Vocab(V), {"streams": True, "k": 2}), xlnet_config(mem_len=8, dropout=0.1), cfg,
                       _streams(), run_dir, progress=False, on_step=on_step)

    full = trainer(tmp_path / "full")
    full.fit()
    with pytest.raises(Stop):
        trainer(tmp_path / "run", stop_at=4).fit()
    again = trainer(tmp_path / "run")
    again.fit(resume=True)
    want = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "full") if "event" not in r}
    got = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "run") if "event" not in r}
    assert got == want and len(want) == 8
    assert torch.equal(again.module.banks[True], full.module.banks[True])


def test_configs_that_cannot_carry_a_memory_are_refused():
    with pytest.raises(ConfigError, match="needs objective.options.streams = true"):
        PLM(Vocab(V)).build(xlnet_config(mem_len=8))
    with pytest.raises(ConfigError, match="bi_data .* cannot be combined with streams"):
        PLM(Vocab(V), {"streams": True, "bi_data": True})
    assert isinstance(PLM(Vocab(V), {"streams": True}).build(xlnet_config(mem_len=0)), RecurrentPLMModule)
    mixed = ObjectiveConfig.from_dict({"name": ["xl-clm", "clm"]})
    with pytest.raises(ConfigError, match="mix consecutive-segment streams and windows"):
        reads_streams(mixed)
    assert reads_streams(ObjectiveConfig.from_dict({"name": "plm", "options": {"streams": True}}))
    assert not reads_streams(ObjectiveConfig.from_dict({"name": "plm"}))
