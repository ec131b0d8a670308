"""T5 (v1.0 and v1.1) and BART interop: tiny random Hugging Face encoder-decoders give the
same encoder hidden states and decoder logits (padding on both the source and the target
side) after `from_hf`, after `to_hf` + reload in transformers, and with the KV cache."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from sesame.models.hf import from_hf, to_hf  # noqa: E402

VOCAB = 97
TOL = 1e-4
CACHE_TOL = 1e-5


def _t5_v1_0():
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=3,
                                num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                feed_forward_proj="relu")
    return transformers.T5ForConditionalGeneration(cfg)


def _t5_v1_1():
    # gated-GELU, untied head without the output scale, a head size that is not d_model / heads
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=12, d_ff=40, num_layers=2, num_heads=4,
                                relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = transformers.T5ForConditionalGeneration(cfg)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 32))  # real v1.1 checkpoints are untied
    return model


def _bart():
    cfg = transformers.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=40,
                                  decoder_ffn_dim=40, max_position_embeddings=40, dropout=0.0)
    model = transformers.BartForConditionalGeneration(cfg)
    with torch.no_grad():
        model.final_logits_bias.copy_(torch.randn_like(model.final_logits_bias))
    return model


CASES = {"t5-v1.0": _t5_v1_0, "t5-v1.1": _t5_v1_1, "bart": _bart}


def _randomise(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
            elif "relative_attention_bias" in name:
                p.mul_(5)  # make the position bias matter
    return model.eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = {}
    for i, (name, make) in enumerate(CASES.items()):
        torch.manual_seed(i)
        hf = _randomise(make())
        src = tmp_path_factory.mktemp(name)
        hf.save_pretrained(src)
        ours, report = from_hf(src)
        assert not report.missing and not report.unexpected, str(report)
        assert ours.config.heads == ["lm"]
        out[name] = (hf, ours.eval(), src)
    return out


def _batch():
    """Source: row 0 full, row 1 right-padded; target: row 0 right-padded, row 1 full."""
    g = torch.Generator().manual_seed(7)
    src = torch.randint(3, VOCAB, (2, 13), generator=g)
    src_mask = torch.ones(2, 13, dtype=torch.long)
    src_mask[1, 8:] = 0
    tgt = torch.randint(3, VOCAB, (2, 9), generator=g)
    tgt_mask = torch.ones(2, 9, dtype=torch.long)
    tgt_mask[0, 6:] = 0
    return src, src_mask, tgt, tgt_mask


def _compare(hf, ours, name):
    src, src_mask, tgt, tgt_mask = _batch()
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        out = ours(src, src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    keep_s, keep_t = src_mask.bool(), tgt_mask.bool()
    d_enc = (out.memory[keep_s] - ref.encoder_last_hidden_state[keep_s]).abs().max().item()
    d_log = (out.logits["lm"][keep_t] - ref.logits[keep_t]).abs().max().item()
    assert d_enc <= TOL, f"{name}: encoder hidden states differ by {d_enc:.3g}"
    assert d_log <= TOL, f"{name}: decoder logits differ by {d_log:.3g}"
    assert ref.logits.abs().max() > 0.1  # not a vacuous comparison


@pytest.mark.parametrize("name", list(CASES))
def test_from_hf_matches_transformers(converted, name):
    hf, ours, _ = converted[name]
    _compare(hf, ours, name)


@pytest.mark.parametrize("name", list(CASES))
def test_to_hf_reloads_in_transformers(converted, name, tmp_path):
    hf, ours, _ = converted[name]
    out_dir = to_hf(ours, tmp_path / "export")
    reloaded, info = type(hf).from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    _compare(reloaded.eval(), ours, f"{name} after export")
    again, _ = from_hf(out_dir)
    assert again.config == ours.config
    for key, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_the_t5_variants_are_read_as_published(converted):
    v10, v11 = converted["t5-v1.0"][1].config, converted["t5-v1.1"][1].config
    assert (v10.feedforward, v10.activation, v10.tie_embeddings, v10.lm_rescale) == ("mlp", "relu", True, True)
    assert (v11.feedforward, v11.activation, v11.tie_embeddings, v11.lm_rescale) == ("glu", "gelu_tanh", False, False)
    assert v10.decoder_layers == 3 and v10.attention_scale == 1.0 and not v10.bias
    bart = converted["bart"][1]
    assert bart.config.position_offset == 2 and bart.body.position.table.weight.shape[0] == 42
    assert bart.heads["lm"].decoder.weight is bart.body.embed.tokens.weight


@pytest.mark.parametrize("name", list(CASES))
def test_cache_on_equals_cache_off(converted, name):
    _, model, _ = converted[name]
    src, src_mask, tgt, _ = _batch()
    with torch.no_grad():
        full = model(src, src_mask, decoder_input_ids=tgt)
        cache = model.new_cache()
        first, cache = model.step(tgt[:, :3], cache, memory=full.memory, memory_mask=src_mask)
        steps = [first]
        for t in range(3, tgt.shape[1]):
            logits, cache = model.step(tgt[:, t:t + 1], cache, memory=full.memory, memory_mask=src_mask)
            steps.append(logits)
    d = (torch.cat(steps, 1) - full.logits["lm"]).abs().max().item()
    assert cache.length == tgt.shape[1]
    assert d <= CACHE_TOL, f"{name}: cached decoding differs from the full forward by {d:.3g}"


@pytest.mark.parametrize("name, count", {"t5-small": 60_506_624, "t5-v1_1-small": 76_961_152,
                                         "bart-base": 139_420_416}.items())
def test_presets_have_published_sizes(name, count):
    """transformers' own counts; ours adds BART's final_logits_bias (a buffer there) as a parameter."""
    from sesame.config import load_config
    from sesame.models import build_model

    with torch.device("meta"):
        model = build_model(load_config(name).model)
    assert abs(model.num_parameters() - count) / count < 0.0005


@pytest.mark.parametrize("name", ["t5-v1.1", "bart"])
def test_cli_convert_round_trip(converted, name, tmp_path):
    """`sesame convert --from-hf` then `--to-hf`: transformers reloads the same model."""
    from sesame.cli.main import main

    hf, _, src = converted[name]
    assert main(["convert", "--from-hf", str(src), str(tmp_path / "ours")]) in (0, None)
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), str(tmp_path / "back")]) in (0, None)
    back = type(hf).from_pretrained(tmp_path / "back").eval()
    for key, value in hf.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key


@pytest.mark.parametrize("name", ["t5-v1.0", "t5-v1.1"])
def test_t5_left_padding_matches_too(converted, name):
    """T5's bias depends only on distances, so left padding (source and target) matches as well;
    BART's learned positions count real tokens here, so only right padding is comparable there."""
    hf, ours, _ = converted[name]
    src, src_mask, tgt, tgt_mask = _batch()
    src_mask, tgt_mask = src_mask.flip(1), tgt_mask.flip(1)
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        out = ours(src, src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    keep_s, keep_t = src_mask.bool(), tgt_mask.bool()
    assert (out.memory[keep_s] - ref.encoder_last_hidden_state[keep_s]).abs().max() <= TOL
    assert (out.logits["lm"][keep_t] - ref.logits[keep_t]).abs().max() <= TOL
