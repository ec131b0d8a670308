"""ALBERT: factorised embeddings (E -> H after the embedding norm), one block
shared by every layer, MLM head over E, sentence-order prediction on the pooler."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import bert_embedding_rules, encoder_config, encoder_config_to_hf
from sesame.models.hf import Family, fused, linear, rule


def config_from_hf(hf: dict) -> ModelConfig:
    groups, inner = hf.get("num_hidden_groups", 1), hf.get("inner_group_num", 1)
    if groups != 1 or inner != 1:
        raise ConversionError(
            f"ALBERT with num_hidden_groups = {groups} and inner_group_num = {inner} is not supported; "
            "sesame shares one block across all layers (num_hidden_groups = inner_group_num = 1)"
        )
    e = hf.get("embedding_size", 128)
    if e == hf["hidden_size"]:
        raise ConversionError(
            f"ALBERT with embedding_size = hidden_size = {e} is not supported: HF still applies "
            "embedding_hidden_mapping_in there, while sesame projects only when embedding_size != hidden"
        )
    return encoder_config(
        hf, "albert", embedding_size=e, share_layers=True,
        dropout=hf.get("hidden_dropout_prob", 0.0), attention_dropout=hf.get("attention_probs_dropout_prob", 0.0),
        tie_embeddings=hf.get("tie_word_embeddings", True),
    )


def config_to_hf(c: ModelConfig) -> dict:
    if not c.share_layers or c.embed_dim == c.hidden:
        raise ConversionError(
            "an ALBERT export needs model.share_layers = true and model.embedding_size < hidden "
            f"(got share_layers = {c.share_layers}, embedding_size = {c.embedding_size}, hidden = {c.hidden})"
        )
    out = encoder_config_to_hf(c, "albert")
    out.update(embedding_size=c.embed_dim, num_hidden_groups=1, inner_group_num=1, num_labels=c.num_labels)
    return out


def body_rules(c: ModelConfig) -> list:
    h = c.num_heads * c.dim_per_head
    theirs = "encoder.albert_layer_groups.0.albert_layers.0"
    out = bert_embedding_rules(c) + linear("body.embed.project", "encoder.embedding_hidden_mapping_in")
    out += [
        *fused("body.layers.0.attn.qkv", [f"{theirs}.attention.{n}" for n in ("query", "key", "value")], (h, h, h)),
        *linear("body.layers.0.attn.out", f"{theirs}.attention.dense"),
        *linear("body.layers.0.attn_norm", f"{theirs}.attention.LayerNorm"),
        *linear("body.layers.0.ffn.up", f"{theirs}.ffn"),
        *linear("body.layers.0.ffn.down", f"{theirs}.ffn_output"),
        *linear("body.layers.0.ffn_norm", f"{theirs}.full_layer_layer_norm"),
    ]
    return out


def head_rules(c: ModelConfig) -> dict:
    mlm = [
        *linear("heads.mlm.dense", "predictions.dense", base=False),
        *linear("heads.mlm.norm", "predictions.LayerNorm", base=False),
        rule("heads.mlm.decoder.bias", "predictions.bias", base=False),
    ]
    if not c.tie_embeddings:
        mlm.append(rule("heads.mlm.decoder.weight", "predictions.decoder.weight", base=False))
    return {
        "pooler": linear("heads.pooler.dense", "pooler"),
        "mlm": mlm,
        "sop": linear("heads.sop.classifier", "sop_classifier.classifier", base=False),
        "classify": linear("heads.classify.classifier", "classifier", base=False),
    }


def architecture(heads: list[str]) -> str:
    if "mlm" in heads and "sop" in heads:
        return "AlbertForPreTraining"
    if "mlm" in heads:
        return "AlbertForMaskedLM"
    if "classify" in heads:
        return "AlbertForSequenceClassification"
    return "AlbertModel"


FAMILY = register("family", "albert")(Family(
    name="albert",
    model_types=("albert",),
    prefix="albert.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
))
