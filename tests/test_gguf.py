"""The GGUF reader on a tiny file written here the way llama.cpp's converter
writes one (q/k rows permuted for interleaved RoPE, ggml shape order, some
tensors Q8_0-quantized), checked against the transformers Llama it came from."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from sesame.models.gguf import _bytes_to_unicode, convert_gguf, load_gguf, unpermute_rope  # noqa: E402
from sesame.models.io import load_model  # noqa: E402

HEADS, KV_HEADS = 4, 2
SPECIAL = "<|endoftext|>"
MERGES = ["Ġ t", "h e", "Ġt he", "1 2"]


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute, the transform the reader undoes."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokens() -> list[str]:
    tokens = [SPECIAL] + sorted(_bytes_to_unicode().values())
    return tokens + ["Ġt", "he", "Ġthe", "12"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tokens = _tokens()
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tokens), hidden_size=64, num_hidden_layers=2, num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS, intermediate_size=64, rope_theta=1000.0, rms_norm_eps=1e-5,
        max_position_embeddings=128, tie_word_embeddings=False,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    state = {k: v.detach().numpy().astype(np.float32) for k, v in hf.state_dict().items()}
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_feed_forward_length(64)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(1000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] + [1] * (len(tokens) - 1))
    w.add_token_merges(MERGES)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}
    w.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    quantized = {}
    for i in range(2):
        for theirs, ours in names.items():
            value = state[f"model.layers.{i}.{theirs}.weight"]
            if ours == "attn_q":
                value = llama_cpp_permute(value, HEADS)
            elif ours == "attn_k":
                value = llama_cpp_permute(value, KV_HEADS)
            if ours in ("attn_v", "ffn_down"):  # quantize these; the reference gets the same values
                q = gguf.quants.quantize(value, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(f"blk.{i}.{ours}.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                quantized[f"model.layers.{i}.{theirs}.weight"] = gguf.quants.dequantize(
                    q, gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(f"blk.{i}.{ours}.weight", value)
    w.add_tensor("output_norm.weight", state["model.norm.weight"])
    w.add_tensor("output.weight", state["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with torch.no_grad():
        for key, value in quantized.items():
            hf.get_parameter(key).copy_(torch.from_numpy(value.reshape(hf.get_parameter(key).shape)))
    return path, hf


def test_unpermute_inverts_llama_cpp():
    w = np.random.default_rng(0).standard_normal((3 * 8, 5)).astype(np.float32)
    back = unpermute_rope(torch.from_numpy(llama_cpp_permute(w, 3)), 3)
    assert torch.equal(back, torch.from_numpy(w))


def test_gguf_matches_transformers(tiny):
    path, hf = tiny
    model, tokenizer = load_gguf(path)
    c = model.config
    assert (c.layers, c.hidden, c.num_heads, c.kv_heads, c.intermediate) == (2, 64, HEADS, KV_HEADS, 64)
    assert (c.rope_theta, c.norm_eps, c.tie_embeddings, c.max_positions) == (1000.0, 1e-5, False, 128)
    ids = torch.randint(1, c.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        got = model(ids).logits["lm"]
    d = (got - want).abs().max().item()
    assert d <= 1e-4, f"GGUF-loaded logits differ from transformers by {d:.3g}"


def test_gguf_tokenizer_and_convert(tiny, tmp_path):
    path, _ = tiny
    _, tokenizer = load_gguf(path)
    enc = tokenizer.encode(f"the theme 123{SPECIAL}")
    assert enc.tokens == ["t", "he", "Ġthe", "m", "e", "Ġ", "1", "2", "3", SPECIAL], enc.tokens
    assert tokenizer.decode(enc.ids, skip_special_tokens=False) == f"the theme 123{SPECIAL}"
    out = convert_gguf(path, tmp_path / "model")
    model, report = load_model(out)
    assert not report.missing
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(out / "tokenizer.json")).encode("the").ids == tokenizer.encode("the").ids
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["eos_token"] == SPECIAL and config["add_bos_token"] is False
