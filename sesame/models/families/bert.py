"""BERT: post-norm encoder, learned positions, segment types, MLM + NSP heads."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.hf import Family, fused, linear, rule

ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "silu": "silu", "swish": "silu"}
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def activation_from_hf(name: str) -> str:
    if name not in ACT_FROM_HF:
        raise ConversionError(f"activation {name!r} is not supported; supported: {', '.join(ACT_FROM_HF)}")
    return ACT_FROM_HF[name]


RELATIVE = ("relative_key", "relative_key_query")  # Shaw positions (transformers < 5)


def encoder_config(hf: dict, family: str, relative_ok: bool = False, **extra) -> ModelConfig:
    """The fields BERT-like HF configs share; ``relative_ok``: the family maps HF's
    Shaw-style ``relative_key`` / ``relative_key_query`` position types."""
    kind = hf.get("position_embedding_type", "absolute")
    if kind != "absolute" and not (relative_ok and kind in RELATIVE):
        raise ConversionError(f"position_embedding_type {kind!r} is not supported for {family}")
    if kind in RELATIVE:  # HF: a table of 2 * max_position_embeddings - 1 distances per layer
        extra = dict(position="shaw", relative_max_distance=hf["max_position_embeddings"] - 1,
                     relative_key_query=kind == "relative_key_query", **extra)
    fields = dict(
        family=family, arch="encoder", vocab_size=hf["vocab_size"], hidden=hf["hidden_size"],
        layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate=hf["intermediate_size"], max_positions=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), norm_eps=hf.get("layer_norm_eps", 1e-12),
        activation=activation_from_hf(hf.get("hidden_act", "gelu")),
        dropout=hf.get("hidden_dropout_prob", 0.1), attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        pad_token_id=hf.get("pad_token_id") or 0, init_std=hf.get("initializer_range", 0.02),
    )
    fields.update(extra)
    return ModelConfig(**fields)


def encoder_config_to_hf(c: ModelConfig, model_type: str) -> dict:
    return {
        "model_type": model_type, "vocab_size": c.vocab_size, "hidden_size": c.hidden,
        "num_hidden_layers": c.layers, "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate, "max_position_embeddings": c.max_positions + c.position_offset,
        "type_vocab_size": c.type_vocab_size, "layer_norm_eps": c.norm_eps,
        "hidden_act": ACT_TO_HF[c.activation], "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.attention_dropout, "pad_token_id": c.pad_token_id,
        "initializer_range": c.init_std, "position_embedding_type": position_type_to_hf(c),
        "tie_word_embeddings": c.tie_embeddings, "num_labels": c.num_labels,
    }


def position_type_to_hf(c: ModelConfig) -> str:
    if c.position == "learned":
        return "absolute"
    if c.position != "shaw" or c.relative_values or c.relative_max_distance != c.max_positions - 1:
        raise ConversionError(
            f"a BERT export needs learned positions or HF's Shaw variant (position = 'shaw', keys only, "
            f"relative_max_distance = max_positions - 1 = {c.max_positions - 1}); got position = "
            f"{c.position!r}, relative_values = {c.relative_values}, relative_max_distance = "
            f"{c.relative_max_distance}"
        )
    return "relative_key_query" if c.relative_key_query else "relative_key"


def bert_layer_rules(c: ModelConfig, i, ours: str, theirs: str) -> list:
    """One BERT-style encoder layer (shared by BERT, RoBERTa, ELECTRA)."""
    h = c.num_heads * c.dim_per_head
    shaw = [rule(f"{ours}.attn.relative.keys.weight", f"{theirs}.attention.self.distance_embedding.weight")]
    return (shaw if c.position == "shaw" else []) + [
        *fused(f"{ours}.attn.qkv", [f"{theirs}.attention.self.{n}" for n in ("query", "key", "value")], (h, h, h)),
        *linear(f"{ours}.attn.out", f"{theirs}.attention.output.dense"),
        *linear(f"{ours}.attn_norm", f"{theirs}.attention.output.LayerNorm"),
        *linear(f"{ours}.ffn.up", f"{theirs}.intermediate.dense"),
        *linear(f"{ours}.ffn.down", f"{theirs}.output.dense"),
        *linear(f"{ours}.ffn_norm", f"{theirs}.output.LayerNorm"),
    ]


def bert_embedding_rules(c: ModelConfig) -> list:
    out = [
        rule("body.embed.tokens.weight", "embeddings.word_embeddings.weight"),
        *linear("body.embed.norm", "embeddings.LayerNorm"),
    ]
    if c.position == "learned":  # HF keeps (and ignores) the absolute table under relative types
        out.insert(1, rule("body.position.table.weight", "embeddings.position_embeddings.weight"))
    if c.type_vocab_size:
        out.append(rule("body.embed.types.weight", "embeddings.token_type_embeddings.weight"))
    return out


def body_rules(c: ModelConfig) -> list:
    out = bert_embedding_rules(c)
    for i in range(c.layers):
        out += bert_layer_rules(c, i, f"body.layers.{i}", f"encoder.layer.{i}")
    return out


def head_rules(c: ModelConfig) -> dict:
    return {
        "pooler": linear("heads.pooler.dense", "pooler.dense"),
        "mlm": [
            *linear("heads.mlm.dense", "cls.predictions.transform.dense", base=False),
            *linear("heads.mlm.norm", "cls.predictions.transform.LayerNorm", base=False),
            rule("heads.mlm.decoder.bias", "cls.predictions.bias", base=False),
        ],
        "nsp": linear("heads.nsp.classifier", "cls.seq_relationship", base=False),
        "classify": linear("heads.classify.classifier", "classifier", base=False),
    }


def architecture(heads: list[str]) -> str:
    if "mlm" in heads and "nsp" in heads:
        return "BertForPreTraining"
    if "mlm" in heads:
        return "BertForMaskedLM"
    if "classify" in heads:
        return "BertForSequenceClassification"
    return "BertModel"


FAMILY = register("family", "bert")(Family(
    name="bert",
    model_types=("bert",),
    prefix="bert.",
    config_from_hf=lambda hf: encoder_config(hf, "bert", relative_ok=True),
    config_to_hf=lambda c: encoder_config_to_hf(c, "bert"),
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    ignore=(r".*position_ids$", r".*\.masked_bias$", r".*\.attn\.bias$",
            r"(bert\.)?embeddings\.position_embeddings\.weight$"),  # reached only when no rule used it
))
