"""DistilBERT: a BERT body without segment types, distilled from BERT; HF names
its parts q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import ACT_TO_HF, activation_from_hf
from sesame.models.hf import Family, fused, linear, rule

EPS = 1e-12  # HF DistilBERT hard-codes its LayerNorm epsilon


def config_from_hf(hf: dict) -> ModelConfig:
    # sinusoidal_pos_embds only decides how HF initialises the table; the table is stored, so
    # it imports as a learned one either way.
    return ModelConfig(
        family="distilbert", arch="encoder", vocab_size=hf["vocab_size"], hidden=hf["dim"],
        layers=hf["n_layers"], num_heads=hf["n_heads"], intermediate=hf["hidden_dim"],
        max_positions=hf["max_position_embeddings"], type_vocab_size=0, norm_eps=EPS,
        activation=activation_from_hf(hf.get("activation", "gelu")), dropout=hf.get("dropout", 0.1),
        attention_dropout=hf.get("attention_dropout", 0.1), pad_token_id=hf.get("pad_token_id") or 0,
        init_std=hf.get("initializer_range", 0.02), tie_embeddings=hf.get("tie_word_embeddings", True),
    )


def config_to_hf(c: ModelConfig) -> dict:
    problems = []
    if c.type_vocab_size:
        problems.append(f"type_vocab_size = {c.type_vocab_size} (DistilBERT has no segment types: 0)")
    if c.embed_dim != c.hidden:
        problems.append("factorised embeddings (embedding_size must equal hidden)")
    if c.activation not in ("gelu", "relu"):
        problems.append(f"activation {c.activation!r} (DistilBERT takes gelu or relu)")
    if problems:
        raise ConversionError("cannot export as DistilBERT: " + "; ".join(problems))
    return {
        "model_type": "distilbert", "vocab_size": c.vocab_size, "dim": c.hidden, "n_layers": c.layers,
        "n_heads": c.num_heads, "hidden_dim": c.intermediate, "max_position_embeddings": c.max_positions,
        "activation": ACT_TO_HF[c.activation], "dropout": c.dropout, "attention_dropout": c.attention_dropout,
        "pad_token_id": c.pad_token_id, "initializer_range": c.init_std, "sinusoidal_pos_embds": False,
        "tie_word_embeddings": c.tie_embeddings,
    }


def body_rules(c: ModelConfig) -> list:
    h = c.num_heads * c.dim_per_head
    out = [
        rule("body.embed.tokens.weight", "embeddings.word_embeddings.weight"),
        rule("body.position.table.weight", "embeddings.position_embeddings.weight"),
        *linear("body.embed.norm", "embeddings.LayerNorm"),
    ]
    for i in range(c.layers):
        ours, theirs = f"body.layers.{i}", f"transformer.layer.{i}"
        out += [
            *fused(f"{ours}.attn.qkv", [f"{theirs}.attention.{n}_lin" for n in "qkv"], (h, h, h)),
            *linear(f"{ours}.attn.out", f"{theirs}.attention.out_lin"),
            *linear(f"{ours}.attn_norm", f"{theirs}.sa_layer_norm"),
            *linear(f"{ours}.ffn.up", f"{theirs}.ffn.lin1"),
            *linear(f"{ours}.ffn.down", f"{theirs}.ffn.lin2"),
            *linear(f"{ours}.ffn_norm", f"{theirs}.output_layer_norm"),
        ]
    return out


def head_rules(c: ModelConfig) -> dict:
    # DistilBertForSequenceClassification uses pre_classifier + ReLU, which has no sesame head.
    mlm = [
        *linear("heads.mlm.dense", "vocab_transform", base=False),
        *linear("heads.mlm.norm", "vocab_layer_norm", base=False),
        rule("heads.mlm.decoder.bias", "vocab_projector.bias", base=False),
    ]
    if not c.tie_embeddings:
        mlm.append(rule("heads.mlm.decoder.weight", "vocab_projector.weight", base=False))
    return {"mlm": mlm}


def architecture(heads: list[str]) -> str:
    unsupported = [h for h in heads if h not in ("mlm",)]
    if unsupported:
        raise ConversionError(
            f"DistilBERT export supports the mlm head only; the model has {unsupported}"
        )
    return "DistilBertForMaskedLM" if "mlm" in heads else "DistilBertModel"


FAMILY = register("family", "distilbert")(Family(
    name="distilbert",
    model_types=("distilbert",),
    prefix="distilbert.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
))
