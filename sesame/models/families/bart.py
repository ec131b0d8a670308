"""BART (Lewis et al. 2020): a post-norm encoder-decoder with GELU, learned
positions whose table starts at BART's offset of 2, a LayerNorm after each side's
embeddings (``layernorm_embedding``), biases everywhere, an LM head tied to the
shared embedding and ``final_logits_bias`` on its logits (our ``heads.lm.decoder.bias``).

HF key map: q/k/v fuse into ``attn.qkv``, encoder_attn's k/v into ``cross.kv``."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import ACT_TO_HF, activation_from_hf
from sesame.models.hf import Family, fused, linear, rule

OFFSET = 2  # BartLearnedPositionalEmbedding's


def config_from_hf(hf: dict) -> ModelConfig:
    for key in ("scale_embedding", "normalize_before", "add_final_layer_norm", "normalize_embedding"):
        if hf.get(key) and key != "normalize_embedding":
            raise ConversionError(f"BART config sets {key} = true, which sesame's bart family does not support")
    if hf.get("normalize_embedding") is False:
        raise ConversionError("BART config sets normalize_embedding = false, which is not supported")
    if hf["encoder_attention_heads"] != hf["decoder_attention_heads"] or hf["encoder_ffn_dim"] != hf["decoder_ffn_dim"]:
        raise ConversionError("BART configs whose encoder and decoder differ in heads or ffn size are not supported")
    return ModelConfig.from_dict(dict(
        family="bart", arch="encoder-decoder", vocab_size=hf["vocab_size"], hidden=hf["d_model"],
        layers=hf["encoder_layers"], decoder_layers=hf["decoder_layers"], num_heads=hf["encoder_attention_heads"],
        intermediate=hf["encoder_ffn_dim"], max_positions=hf["max_position_embeddings"], type_vocab_size=0,
        position="learned", position_offset=OFFSET, norm="layernorm", norm_eps=1e-5, prenorm=False,
        embedding_norm=True, final_norm=False, feedforward="mlp",
        activation=activation_from_hf(hf.get("activation_function", "gelu")), bias=True,
        dropout=hf.get("dropout", 0.1), attention_dropout=hf.get("attention_dropout", 0.0),
        heads=["lm"], tie_embeddings=True, lm_bias=True, pad_token_id=hf.get("pad_token_id", 1),
        init_std=hf.get("init_std", 0.02),
    ))


def _check_exportable(c: ModelConfig) -> None:
    want = dict(arch="encoder-decoder", position="learned", position_offset=OFFSET, norm="layernorm",
                prenorm=False, embedding_norm=True, feedforward="mlp", bias=True, type_vocab_size=0,
                share_layers=False, attention_scale=None, embedding_size=None, lm_rescale=False,
                tie_embeddings=True, lm_bias=True, adapter_size=0, norm_eps=1e-5)
    bad = [f"{k} = {getattr(c, k)!r}" for k, v in want.items() if getattr(c, k) != v]
    if c.kv_heads != c.num_heads:
        bad.append(f"num_kv_heads = {c.num_kv_heads}")
    if c.dim_per_head * c.num_heads != c.hidden:
        bad.append(f"head_dim = {c.head_dim} (BART's is hidden / num_heads)")
    if c.use_final_norm:
        bad.append("final_norm = true")
    if bad:
        raise ConversionError(f"this model cannot be written as BART: it has {', '.join(bad)}")


def config_to_hf(c: ModelConfig) -> dict:
    _check_exportable(c)
    return {
        "model_type": "bart", "vocab_size": c.vocab_size, "d_model": c.hidden,
        "encoder_layers": c.layers, "decoder_layers": c.decoder_layers or c.layers,
        "encoder_attention_heads": c.num_heads, "decoder_attention_heads": c.num_heads,
        "encoder_ffn_dim": c.intermediate, "decoder_ffn_dim": c.intermediate,
        "max_position_embeddings": c.max_positions, "activation_function": ACT_TO_HF[c.activation],
        "dropout": c.dropout, "attention_dropout": c.attention_dropout, "activation_dropout": 0.0,
        "init_std": c.init_std, "scale_embedding": False, "is_encoder_decoder": True,
        "pad_token_id": c.pad_token_id, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2,
        "forced_eos_token_id": None,  # sesame's decoding does not force </s> at the length limit
        "tie_word_embeddings": True,
    }


def _attention(ours: str, theirs: str, c: ModelConfig, cross: bool = False) -> list:
    h = c.num_heads * c.dim_per_head
    if cross:
        proj = [*linear(f"{ours}.q", f"{theirs}.q_proj"),
                *fused(f"{ours}.kv", [f"{theirs}.k_proj", f"{theirs}.v_proj"], (h, h))]
    else:
        proj = fused(f"{ours}.qkv", [f"{theirs}.{n}_proj" for n in "qkv"], (h, h, h))
    return [*proj, *linear(f"{ours}.out", f"{theirs}.out_proj")]


def body_rules(c: ModelConfig) -> list:
    out = [
        rule("body.embed.tokens.weight", "shared.weight"),
        rule("body.position.table.weight", "encoder.embed_positions.weight"),
        rule("body.decoder_position.table.weight", "decoder.embed_positions.weight"),
        *linear("body.embed.norm", "encoder.layernorm_embedding"),
        *linear("body.decoder_embed_norm", "decoder.layernorm_embedding"),
    ]
    for side, count in (("encoder", c.layers), ("decoder", c.decoder_layers or c.layers)):
        for i in range(count):
            ours, theirs = f"body.{side}.{i}", f"{side}.layers.{i}"
            out += [
                *_attention(f"{ours}.attn", f"{theirs}.self_attn", c),
                *linear(f"{ours}.attn_norm", f"{theirs}.self_attn_layer_norm"),
                *linear(f"{ours}.ffn.up", f"{theirs}.fc1"),
                *linear(f"{ours}.ffn.down", f"{theirs}.fc2"),
                *linear(f"{ours}.ffn_norm", f"{theirs}.final_layer_norm"),
            ]
            if side == "decoder":
                out += [*_attention(f"{ours}.cross", f"{theirs}.encoder_attn", c, cross=True),
                        *linear(f"{ours}.cross_norm", f"{theirs}.encoder_attn_layer_norm")]
    return out


def head_rules(c: ModelConfig) -> dict:
    return {"lm": [rule("heads.lm.decoder.weight", "shared.weight"),
                   rule("heads.lm.decoder.bias", "final_logits_bias", op="row", base=False)]}


def architecture(heads: list[str]) -> str:
    return "BartForConditionalGeneration" if "lm" in heads else "BartModel"


FAMILY = register("family", "bart")(Family(
    name="bart",
    model_types=("bart",),
    prefix="model.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    ignore=(r".*(encoder|decoder)\.embed_tokens\.weight$", r"lm_head\.weight$"),
))
