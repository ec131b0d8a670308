"""GPT-2 and Llama interop: tiny random Hugging Face decoders must give the same
logits and last hidden states after `from_hf`, after `to_hf` + reload in
transformers, and with the KV cache (incremental decoding == full forward)."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from sesame.models.hf import from_hf, to_hf  # noqa: E402

VOCAB = 97
TOL = 1e-4
CACHE_TOL = 1e-5


def _gpt2():
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,
    )
    return transformers.GPT2LMHeadModel(cfg)


def _llama_gqa_untied():
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, intermediate_size=40, rope_theta=500.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False, max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg)


def _llama_tied_bias():
    # tied head, biases everywhere, a head size that is not hidden / heads, MQA (one kv head)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, intermediate_size=40, tie_word_embeddings=True,
        attention_bias=True, mlp_bias=True, max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg)


CASES = {"gpt2": _gpt2, "llama-gqa-untied": _llama_gqa_untied, "llama-tied-bias": _llama_tied_bias}


def _randomise(model):
    """Random init leaves norms at 1 and biases at 0; perturb them so the maps are checked."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> (HF model, our model, HF directory)."""
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
    """Row 0 full, row 1 right-padded, row 2 left-padded."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, VOCAB, (3, 11), generator=g)
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, :4] = 0
    return ids, mask


def _hf_outputs(hf, ids, mask):
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # what our body computes from the mask
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True)
    return out.logits, out.hidden_states[-1]


def _diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(CASES))
def test_from_hf_matches_transformers(converted, name):
    hf, ours, _ = converted[name]
    ids, mask = _batch()
    logits, hidden = _hf_outputs(hf, ids, mask)
    with torch.no_grad():
        out = ours(ids, mask)
    keep = mask.bool()
    d_logits = _diff(out.logits["lm"][keep], logits[keep])
    d_hidden = _diff(out.hidden[keep], hidden[keep])
    assert d_logits <= TOL, f"{name}: logits differ by {d_logits:.3g} (tolerance {TOL})"
    assert d_hidden <= TOL, f"{name}: last hidden state differs by {d_hidden:.3g} (tolerance {TOL})"


@pytest.mark.parametrize("name", list(CASES))
def test_to_hf_reloads_in_transformers(converted, name, tmp_path):
    hf, ours, _ = converted[name]
    out_dir = to_hf(ours, tmp_path / "export")
    reloaded, info = type(hf).from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert reloaded.config.tie_word_embeddings == hf.config.tie_word_embeddings
    ids, mask = _batch()
    logits, hidden = _hf_outputs(reloaded.eval(), ids, mask)
    with torch.no_grad():
        out = ours(ids, mask)
    keep = mask.bool()
    d_logits = _diff(out.logits["lm"][keep], logits[keep])
    d_hidden = _diff(out.hidden[keep], hidden[keep])
    assert d_logits <= TOL, f"{name} after export: logits differ by {d_logits:.3g} (tolerance {TOL})"
    assert d_hidden <= TOL, f"{name} after export: hidden differs by {d_hidden:.3g} (tolerance {TOL})"
    # and back again: the round trip is lossless
    again, _ = from_hf(out_dir)
    for key, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_rope_scaling_is_refused(tmp_path):
    from sesame.errors import ConversionError
    from sesame.models.families.llama import config_from_hf

    hf = _llama_gqa_untied().config.to_dict()
    hf["rope_parameters"] = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}
    with pytest.raises(ConversionError, match="linear"):
        config_from_hf(hf)
    old = {k: v for k, v in hf.items() if k != "rope_parameters"}
    old["rope_scaling"] = {"type": "dynamic", "factor": 2.0}
    with pytest.raises(ConversionError, match="dynamic"):
        config_from_hf(old)


# ---- KV cache: incremental decoding equals the full forward ----------------
DECODERS = ["gpt2", "llama-gqa-untied"]


@pytest.mark.parametrize("name", DECODERS)
def test_cache_token_by_token(converted, name):
    _, model, _ = converted[name]
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids).logits["lm"]
    cache = model.new_cache()
    steps = []
    for t in range(ids.shape[1]):
        logits, cache = model.step(ids[:, t : t + 1], cache)
        steps.append(logits)
    d = _diff(torch.cat(steps, 1), full)
    assert cache.length == ids.shape[1]
    assert d <= CACHE_TOL, f"{name}: token-by-token decoding differs from the full forward by {d:.3g}"


@pytest.mark.parametrize("name", DECODERS)
def test_cache_prompt_then_tokens(converted, name):
    _, model, _ = converted[name]
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(ids).logits["lm"]
    cache = model.new_cache()
    first, cache = model.step(ids[:, :7], cache)
    steps = [first]
    for t in range(7, ids.shape[1]):
        logits, cache = model.step(ids[:, t : t + 1], cache)
        steps.append(logits)
    d = _diff(torch.cat(steps, 1), full)
    assert d <= CACHE_TOL, f"{name}: prompt + token decoding differs from the full forward by {d:.3g}"


@pytest.mark.parametrize("name", DECODERS)
def test_cache_left_padded_batch(converted, name):
    """Two prompts of different lengths, left-padded, then generated tokens appended."""
    _, model, _ = converted[name]
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :3] = 0  # the second prompt is 3 tokens shorter
    prompt = 6
    with torch.no_grad():
        full = model(ids, mask).logits["lm"]
    cache = model.new_cache()
    first, cache = model.step(ids[:, :prompt], cache, attention_mask=mask[:, :prompt])
    steps = [first]
    for t in range(prompt, ids.shape[1]):
        logits, cache = model.step(ids[:, t : t + 1], cache, attention_mask=mask[:, : t + 1])
        steps.append(logits)
    keep = mask.bool()
    d = _diff(torch.cat(steps, 1)[keep], full[keep])
    assert d <= CACHE_TOL, f"{name}: left-padded cached decoding differs from the full forward by {d:.3g}"
    # and the padded row matches the same prompt run alone, unpadded
    with torch.no_grad():
        alone = model(ids[1:, 3:]).logits["lm"]
    d_alone = _diff(full[1, 3:], alone[0])
    assert d_alone <= TOL, f"{name}: left padding changes the logits by {d_alone:.3g}"
