"""Llama: pre-norm decoder with RMSNorm, rotary positions (HF's half-split
convention, which ours follows), grouped-query attention and a SwiGLU
feed-forward. HF's separate q/k/v and gate/up projections fuse into our
``attn.qkv`` and ``ffn.up`` (gate rows first)."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import ACT_TO_HF, activation_from_hf
from sesame.models.families.gpt2 import lm_head_rules
from sesame.models.hf import Family, fused, linear, rule


def rope_theta_from_hf(hf: dict) -> float:
    """``rope_theta`` from a v5 ``rope_parameters`` table or the older top-level keys;
    any scaling scheme (linear, dynamic, yarn, llama3, ...) is refused."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    for table in (params, scaling or {}):
        kind = table.get("rope_type", table.get("type", "default"))
        if kind != "default":
            raise ConversionError(
                f"rope scaling {kind!r} is not supported: sesame implements plain RoPE only "
                "(rope_type 'default')"
            )
        if table.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConversionError("partial rotary embeddings (partial_rotary_factor < 1) are not supported")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: dict) -> ModelConfig:
    attention_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
    if attention_bias != mlp_bias:
        raise ConversionError(
            f"Llama config has attention_bias = {attention_bias} but mlp_bias = {mlp_bias}; sesame's "
            "model.bias covers both, so they must agree"
        )
    if hf.get("pretraining_tp", 1) not in (1, None):
        raise ConversionError("Llama pretraining_tp > 1 is not supported")
    hidden, heads = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim")
    return ModelConfig.from_dict(dict(
        family="llama", arch="decoder", vocab_size=hf["vocab_size"], hidden=hidden,
        layers=hf["num_hidden_layers"], num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=head_dim if head_dim and head_dim * heads != hidden else None,
        intermediate=hf["intermediate_size"], max_positions=hf.get("max_position_embeddings", 2048),
        type_vocab_size=0, position="rotary", rope_theta=rope_theta_from_hf(hf),
        norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6), prenorm=True, embedding_norm=False,
        final_norm=True, feedforward="glu", activation=activation_from_hf(hf.get("hidden_act", "silu")),
        bias=attention_bias, dropout=0.0, attention_dropout=hf.get("attention_dropout", 0.0),
        heads=["lm"], tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        pad_token_id=hf.get("pad_token_id") or 0, init_std=hf.get("initializer_range", 0.02),
    ))


def _check_exportable(c: ModelConfig) -> None:
    want = dict(arch="decoder", position="rotary", norm="rmsnorm", prenorm=True, embedding_norm=False,
                feedforward="glu", type_vocab_size=0, share_layers=False, attention_scale=None,
                embedding_size=None)
    bad = [f"{k} = {getattr(c, k)!r}" for k, v in want.items() if getattr(c, k) != v]
    if not c.use_final_norm:
        bad.append("final_norm = false")
    if bad:
        raise ConversionError(f"this model cannot be written as Llama: it has {', '.join(bad)}")


def config_to_hf(c: ModelConfig) -> dict:
    _check_exportable(c)
    return {
        "model_type": "llama", "vocab_size": c.vocab_size, "hidden_size": c.hidden,
        "num_hidden_layers": c.layers, "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.kv_heads, "head_dim": c.dim_per_head,
        "intermediate_size": c.intermediate, "max_position_embeddings": c.max_positions,
        "hidden_act": ACT_TO_HF[c.activation], "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "rope_scaling": None, "attention_bias": c.bias, "mlp_bias": c.bias,
        "attention_dropout": c.attention_dropout, "initializer_range": c.init_std,
        "tie_word_embeddings": c.tie_embeddings, "pad_token_id": c.pad_token_id,
    }


def body_rules(c: ModelConfig) -> list:
    q, kv = c.num_heads * c.dim_per_head, c.kv_heads * c.dim_per_head
    out = [rule("body.embed.tokens.weight", "embed_tokens.weight")]
    for i in range(c.layers):
        ours, theirs = f"body.layers.{i}", f"layers.{i}"
        out += [
            *linear(f"{ours}.attn_norm", f"{theirs}.input_layernorm", bias=False),
            *fused(f"{ours}.attn.qkv", [f"{theirs}.self_attn.{n}_proj" for n in "qkv"], (q, kv, kv), bias=c.bias),
            *linear(f"{ours}.attn.out", f"{theirs}.self_attn.o_proj", bias=c.bias),
            *linear(f"{ours}.ffn_norm", f"{theirs}.post_attention_layernorm", bias=False),
            *fused(f"{ours}.ffn.up", [f"{theirs}.mlp.gate_proj", f"{theirs}.mlp.up_proj"],
                   (c.intermediate, c.intermediate), bias=c.bias),
            *linear(f"{ours}.ffn.down", f"{theirs}.mlp.down_proj", bias=c.bias),
        ]
    out += linear("body.final_norm", "norm", bias=False)
    return out


def head_rules(c: ModelConfig) -> dict:
    return {"lm": lm_head_rules(c, "embed_tokens.weight")}


def architecture(heads: list[str]) -> str:
    return "LlamaForCausalLM" if "lm" in heads else "LlamaModel"


FAMILY = register("family", "llama")(Family(
    name="llama",
    model_types=("llama",),
    prefix="model.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    ignore=(r".*position_ids$", r".*rotary_emb\.inv_freq$", r"lm_head\.weight$"),
))
