"""Transformer-XL: the ``xl`` kernel (four-term relative score, relative shift) against a
brute-force computation, and segment recurrence (``model.new_memory``) against processing
the concatenation at once."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.models.model import build_model
from sesame.nn.attention.xl import XLAttention, rel_shift
from sesame.nn.layout import Layout
from sesame.nn.positions import sinusoid


def xl_config(**kw):
    base = dict(arch="decoder", heads=["lm"], vocab_size=50, hidden=24, num_heads=3, layers=2, intermediate=40,
                position="none", attention="xl", type_vocab_size=0, dropout=0.0, attention_dropout=0.0,
                mem_len=6)
    base.update(kw)
    return ModelConfig.from_dict(base)


def test_rel_shift_is_the_gather():
    b, h, tq, tk = 2, 3, 4, 7
    x = torch.randn(b, h, tq, tk + tq)
    out = rel_shift(x, tk)
    for i in range(tq):
        for j in range(tk):
            assert torch.equal(out[..., i, j], x[..., i, tq - i + j])  # column c holds distance tk - c


@pytest.mark.parametrize("causal,segments,clamp", [(True, False, 0), (False, True, 0), (False, False, 2)])
def test_xl_kernel_brute_force(causal, segments, clamp):
    cfg = xl_config(relative_segments=segments, clamp_len=clamp, arch="decoder" if causal else "encoder",
                    heads=["lm"] if causal else ["mlm"], mem_len=0)
    torch.manual_seed(0)
    kern = XLAttention(1 / math.sqrt(cfg.dim_per_head), 0.0, cfg).eval()
    b, h, d, tq, tk = 2, 3, 8, 4, 6  # two memory positions before the queries
    q, k, v = torch.randn(b, h, tq, d), torch.randn(b, h, tk, d), torch.randn(b, h, tk, d)
    seg = torch.randint(0, 3, (b, tk))
    pad = torch.ones(b, tk, dtype=torch.bool)
    pad[1, 0] = False
    layout = Layout(causal=causal, key_padding=pad, q_offset=tk - tq, segments=seg if segments else None)
    with torch.no_grad():
        out = kern(q, k, v, layout)
        out_map, amap = kern.attend_with_map(q, k, v, layout)
        ref = torch.zeros_like(out)
        for bi in range(b):
            for hi in range(h):
                for i in range(tq):
                    gi = tk - tq + i
                    scores = []
                    for j in range(tk):
                        dist = gi - j if clamp == 0 else max(-clamp, min(clamp, gi - j))
                        r = kern.r(sinusoid(torch.tensor(dist), cfg.hidden)).view(h, d)[hi]
                        s = (q[bi, hi, i] + kern.u[hi]) @ k[bi, hi, j] + (q[bi, hi, i] + kern.v[hi]) @ r
                        if segments:
                            which = int(seg[bi, gi] != seg[bi, j])
                            s = s + (q[bi, hi, i] + kern.segment_bias[hi]) @ kern.segment[which, hi]
                        visible = pad[bi, j] and (not causal or j <= gi)
                        scores.append(s * kern.scale if visible else torch.tensor(-math.inf))
                    p = torch.softmax(torch.stack(scores), 0)
                    ref[bi, hi, i] = p @ v[bi, hi]
    assert (out - ref).abs().max() < 1e-5
    assert (out_map - ref).abs().max() < 1e-5
    assert torch.allclose(amap.probs.sum(-1), torch.ones(b, h, tq))


def _model(**kw):
    torch.manual_seed(0)
    model = build_model(xl_config(**kw)).eval()
    with torch.no_grad():  # u, v, W_kR and biases away from their init so every term counts
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_memory_segment_equals_concatenation():
    model = _model(mem_len=6)
    ids = torch.randint(0, 50, (2, 14))
    with torch.no_grad():
        full = model(ids, output_hidden_states=True)
        mem = model.new_memory()
        first = model(ids[:, :6], cache=mem)
        assert [m.length for m in mem.layers] == [6, 6]
        second = model(ids[:, 6:12], cache=mem)  # memory = exactly segment 1
        third = model(ids[:, 12:], cache=mem)  # memory trimmed to the last mem_len = 6 positions
    assert (first.logits["lm"] - full.logits["lm"][:, :6]).abs().max() < 1e-5
    assert (second.hidden - full.hidden[:, 6:12]).abs().max() < 1e-5
    assert (second.logits["lm"] - full.logits["lm"][:, 6:12]).abs().max() < 1e-5
    assert third.logits["lm"].shape[1] == 2 and [m.length for m in mem.layers] == [6, 6]
    assert not any(m.h.requires_grad for m in mem.layers)


def test_memory_covers_two_segments():
    model = _model(mem_len=8)
    ids = torch.randint(0, 50, (2, 12))
    with torch.no_grad():
        full = model(ids)
        mem = model.new_memory()
        outs = [model(ids[:, i:i + 4], cache=mem).logits["lm"] for i in (0, 4, 8)]
    assert (torch.cat(outs, 1) - full.logits["lm"]).abs().max() < 1e-5


def test_memory_decoding_and_kv_cache_equal_full():
    model = _model(mem_len=32)
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        full = model(ids).logits["lm"]
        for cache in (model.new_memory(), model.new_cache()):
            steps = [model.step(ids[:, :3], cache)[0]] + [model.step(ids[:, i:i + 1], cache)[0] for i in range(3, 9)]
            assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_memory_saved_and_restored_exactly(tmp_path):
    model = _model(mem_len=5)
    ids = torch.randint(0, 50, (3, 10))
    with torch.no_grad():
        mem = model.new_memory()
        model(ids[:, :5], cache=mem)
        save_file(mem.tensors(), str(tmp_path / "memory.safetensors"))
        expected = model(ids[:, 5:], cache=mem).logits["lm"]
        again = model.new_memory()
        again.load(load_file(str(tmp_path / "memory.safetensors")))
        got = model(ids[:, 5:], cache=again).logits["lm"]
    assert torch.equal(got, expected)


def test_gradients_flow_into_xl_parameters_not_memory():
    model = _model(mem_len=4)
    model.train()
    ids = torch.randint(0, 50, (2, 8))
    mem = model.new_memory()
    model(ids[:, :4], cache=mem)
    out = model(ids[:, 4:], cache=mem)
    out.logits["lm"].sum().backward()
    kern = model.body.layers[0].attn.kernel
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (kern.u, kern.v, kern.r.weight))


def test_xl_config_errors():
    with pytest.raises(ConfigError, match="attention = 'xl'"):
        ModelConfig.from_dict({"mem_len": 4})
    with pytest.raises(ConfigError, match="position = 'none'"):
        ModelConfig.from_dict({"attention": "xl"})
    with pytest.raises(ConfigError, match="recurrence memory"):
        build_model(xl_config(mem_len=0)).new_memory()
