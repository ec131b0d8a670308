"""ELECTRA: a BERT body with factorised embeddings (E -> H after the embedding
norm). The discriminator (ElectraForPreTraining) carries our ``rtd`` head; the
generator is a separate HF model (ElectraForMaskedLM) carrying our ``mlm`` head.
Which one a checkpoint is, the weights present decide."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import (
    bert_embedding_rules,
    bert_layer_rules,
    encoder_config,
    encoder_config_to_hf,
)
from sesame.models.families.roberta import check_mlm_activation
from sesame.models.hf import Family, linear, rule


def config_from_hf(hf: dict) -> ModelConfig:
    e = hf.get("embedding_size", 128)
    c = encoder_config(
        hf, "electra", embedding_size=None if e == hf["hidden_size"] else e,
        tie_embeddings=hf.get("tie_word_embeddings", True),
    )
    check_mlm_activation(c, hf.get("architectures") or [], "ELECTRA's generator")
    return c


def config_to_hf(c: ModelConfig) -> dict:
    if "mlm" in c.heads and c.activation != "gelu":
        raise ConversionError(f"ELECTRA's generator head applies gelu; model.activation = {c.activation!r}")
    out = encoder_config_to_hf(c, "electra")
    out.update(embedding_size=c.embed_dim, num_labels=c.num_labels)
    return out


def body_rules(c: ModelConfig) -> list:
    out = bert_embedding_rules(c)
    if c.embed_dim != c.hidden:
        out += linear("body.embed.project", "embeddings_project")
    for i in range(c.layers):
        out += bert_layer_rules(c, i, f"body.layers.{i}", f"encoder.layer.{i}")
    return out


def head_rules(c: ModelConfig) -> dict:
    # ElectraForSequenceClassification uses dense + gelu (not tanh): no sesame head matches it.
    mlm = [
        *linear("heads.mlm.dense", "generator_predictions.dense", base=False),
        *linear("heads.mlm.norm", "generator_predictions.LayerNorm", base=False),
        rule("heads.mlm.decoder.bias", "generator_lm_head.bias", base=False),
    ]
    if not c.tie_embeddings:
        mlm.append(rule("heads.mlm.decoder.weight", "generator_lm_head.weight", base=False))
    return {
        "rtd": [
            *linear("heads.rtd.dense", "discriminator_predictions.dense", base=False),
            *linear("heads.rtd.out", "discriminator_predictions.dense_prediction", base=False),
        ],
        "mlm": mlm,
    }


def architecture(heads: list[str]) -> str:
    unsupported = [h for h in heads if h not in ("rtd", "mlm")]
    if unsupported or ("rtd" in heads and "mlm" in heads):
        raise ConversionError(
            f"ELECTRA exports as a discriminator (heads ['rtd']) or a generator (heads ['mlm']), "
            f"one model each; got heads {heads}"
        )
    if "rtd" in heads:
        return "ElectraForPreTraining"
    if "mlm" in heads:
        return "ElectraForMaskedLM"
    return "ElectraModel"


FAMILY = register("family", "electra")(Family(
    name="electra",
    model_types=("electra",),
    prefix="electra.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
))
