"""Inference weight formats: int8 weight-only layers stay within half a quantisation step
of the float weights, both int8 kernels agree, converted models decode with the cache
exactly as without it, and they refuse to be saved."""
import copy

import pytest
import torch
from torch import nn

from sesame.config import ModelConfig
from sesame.errors import CheckpointError, ConfigError
from sesame.generate import generate
from sesame.models import build_model, save_model
from sesame.models.quantize import PACKED_ROWS, Int8Linear, convert_weights, is_converted


def decoder(position="rotary"):
    torch.manual_seed(0)
    cfg = ModelConfig(arch="decoder", vocab_size=50, hidden=32, layers=2, num_heads=4, intermediate=64,
                      max_positions=64, heads=["lm"], prenorm=True, embedding_norm=False, type_vocab_size=0,
                      dropout=0.0, attention_dropout=0.0, position=position)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.body.embed.tokens.weight.mul_(20)  # sharper distributions than the tiny init gives
    return model


def test_int8_weights_are_within_half_a_step_of_the_float_ones():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    q = Int8Linear(linear)
    assert q.weight.dtype == torch.int8 and q.scales.shape == (40,)
    step = q.scales.float()[:, None]
    exact = q.weight.float() * step
    assert bool(((exact - linear.weight).abs() <= step / 2 + 1e-6 * step).all())
    assert int(q.weight.abs().max()) == 127  # each row's largest weight uses the full range


def test_packed_and_dequantised_int8_paths_agree_and_match_float():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    q = Int8Linear(linear)
    x = torch.randn(2 * PACKED_ROWS, 64)
    wide = q(x)  # more rows than the packed kernel takes: dequantise + bf16 matmul
    narrow = torch.cat([q(row[None]) for row in x])  # one row at a time: the packed kernel
    assert wide.shape == (2 * PACKED_ROWS, 48) and wide.dtype == torch.float32
    assert torch.allclose(wide, narrow, atol=2e-2, rtol=1e-2)  # both round through bf16
    ref = linear(x)
    assert (wide - ref).abs().max() < 0.02 * ref.abs().max()
    assert q(x.view(4, 8, 64)).shape == (4, 8, 48)


@pytest.mark.parametrize("weights", ["bf16", "int8"])
def test_converted_decoder_caches_exactly_and_stays_close(weights):
    model = decoder()
    small = convert_weights(copy.deepcopy(model), weights)
    ids = torch.randint(1, 50, (2, 7))
    cached = generate(small, ids, max_new_tokens=6, keep_logits=True)
    out, logits = ids, []
    with torch.no_grad():
        for _ in range(6):  # no cache: the whole sequence every step
            step = small(out).logits["lm"][:, -1].float()
            logits.append(step)
            out = torch.cat([out, step.argmax(-1, keepdim=True)], 1)
    assert torch.equal(cached.sequences, out)
    tol = 0.1 if weights == "bf16" else 0.15  # bf16 rounding of activations (and of the weights)
    assert max((a - b).abs().max().item() for a, b in zip(cached.step_logits, logits)) < tol
    full = generate(model, ids, max_new_tokens=1, keep_logits=True).step_logits[0]
    assert (cached.step_logits[0] - full).abs().max() < 0.05 * full.abs().max()


def test_bf16_keeps_rotary_frequencies_in_fp32():
    model = convert_weights(decoder("rotary"), "bf16")
    rotary = model.body.position
    assert model.body.embed.tokens.weight.dtype == torch.bfloat16
    assert rotary.inv_freq.dtype == torch.float32  # rounding them would rotate far positions wrongly


def test_converted_models_refuse_to_be_saved_and_unknown_formats_fail(tmp_path):
    model = convert_weights(decoder(), "int8")
    assert is_converted(model)
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 2 * 4 + 1  # qkv, out, ffn x2, lm head
    with pytest.raises(CheckpointError, match="int8"):
        save_model(model, tmp_path / "m")
    with pytest.raises(ConfigError, match="fp32, bf16, int8"):
        convert_weights(decoder(), "int4")
