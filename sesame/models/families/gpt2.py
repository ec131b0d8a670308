"""GPT-2: pre-norm decoder with learned positions, LayerNorm, a GELU (tanh) MLP
and an LM head tied to the token embedding. HF stores its projections as
Conv1D, whose weights are (in, out): every rule for them transposes."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import ACT_TO_HF, activation_from_hf
from sesame.models.hf import Family, linear, rule


def config_from_hf(hf: dict) -> ModelConfig:
    for key in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if hf.get(key):
            raise ConversionError(f"GPT-2 config sets {key} = true, which sesame does not support")
    if hf.get("scale_attn_weights", True) is False:
        raise ConversionError("GPT-2 config sets scale_attn_weights = false, which sesame does not support")
    hidden = hf["n_embd"]
    return ModelConfig.from_dict(dict(
        family="gpt2", arch="decoder", vocab_size=hf["vocab_size"], hidden=hidden,
        layers=hf["n_layer"], num_heads=hf["n_head"], intermediate=hf.get("n_inner") or 4 * hidden,
        max_positions=hf["n_positions"], type_vocab_size=0, position="learned",
        norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), prenorm=True,
        embedding_norm=False, final_norm=True, feedforward="mlp",
        activation=activation_from_hf(hf.get("activation_function", "gelu_new")), bias=True,
        dropout=hf.get("resid_pdrop", 0.1), attention_dropout=hf.get("attn_pdrop", 0.1),
        heads=["lm"], tie_embeddings=hf.get("tie_word_embeddings", True),
        pad_token_id=hf.get("pad_token_id") or 0, init_std=hf.get("initializer_range", 0.02),
    ))


def _check_exportable(c: ModelConfig) -> None:
    want = dict(arch="decoder", position="learned", norm="layernorm", prenorm=True, embedding_norm=False,
                feedforward="mlp", bias=True, type_vocab_size=0, position_offset=0, share_layers=False,
                attention_scale=None, embedding_size=None, head_dim=None)
    bad = [f"{k} = {getattr(c, k)!r}" for k, v in want.items() if getattr(c, k) != v]
    if c.kv_heads != c.num_heads:
        bad.append(f"num_kv_heads = {c.num_kv_heads}")
    if not c.use_final_norm:
        bad.append("final_norm = false")
    if bad:
        raise ConversionError(f"this model cannot be written as GPT-2: it has {', '.join(bad)}")


def config_to_hf(c: ModelConfig) -> dict:
    _check_exportable(c)
    return {
        "model_type": "gpt2", "vocab_size": c.vocab_size, "n_embd": c.hidden, "n_layer": c.layers,
        "n_head": c.num_heads, "n_inner": c.intermediate, "n_positions": c.max_positions,
        "activation_function": ACT_TO_HF[c.activation], "layer_norm_epsilon": c.norm_eps,
        "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.attention_dropout,
        "initializer_range": c.init_std, "scale_attn_weights": True, "tie_word_embeddings": c.tie_embeddings,
        # <|endoftext|> closes GPT-2's byte-level vocabulary; smaller vocabularies name none
        "bos_token_id": 50256 if c.vocab_size > 50256 else None,
        "eos_token_id": 50256 if c.vocab_size > 50256 else None,
    }


def body_rules(c: ModelConfig) -> list:
    out = [
        rule("body.embed.tokens.weight", "wte.weight"),
        rule("body.position.table.weight", "wpe.weight"),
    ]
    for i in range(c.layers):
        ours, theirs = f"body.layers.{i}", f"h.{i}"
        out += [
            *linear(f"{ours}.attn_norm", f"{theirs}.ln_1"),
            *linear(f"{ours}.attn.qkv", f"{theirs}.attn.c_attn", op="t"),  # already fused [q; k; v]
            *linear(f"{ours}.attn.out", f"{theirs}.attn.c_proj", op="t"),
            *linear(f"{ours}.ffn_norm", f"{theirs}.ln_2"),
            *linear(f"{ours}.ffn.up", f"{theirs}.mlp.c_fc", op="t"),
            *linear(f"{ours}.ffn.down", f"{theirs}.mlp.c_proj", op="t"),
        ]
    out += linear("body.final_norm", "ln_f")
    return out


def head_rules(c: ModelConfig) -> dict:
    return {"lm": lm_head_rules(c, "wte.weight")}


def lm_head_rules(c: ModelConfig, embedding: str) -> list:
    """A tied LM head maps onto the token embedding (so import finds the head and export
    writes nothing extra); an untied one is HF's top-level ``lm_head``."""
    if c.tie_embeddings:
        return [rule("heads.lm.decoder.weight", embedding)]
    return [rule("heads.lm.decoder.weight", "lm_head.weight", base=False)]


def architecture(heads: list[str]) -> str:
    return "GPT2LMHeadModel" if "lm" in heads else "GPT2Model"


FAMILY = register("family", "gpt2")(Family(
    name="gpt2",
    model_types=("gpt2",),
    prefix="transformer.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    ignore=(r".*position_ids$", r".*\.masked_bias$", r".*\.attn\.bias$", r"lm_head\.weight$"),
))
