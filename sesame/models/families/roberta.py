"""RoBERTa: BERT's encoder with positions counted from ``padding_idx + 1``, one
segment type by default, and an MLM head whose activation is always gelu."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import (
    body_rules,
    encoder_config,
    encoder_config_to_hf,
)
from sesame.models.hf import Family, linear, rule


def heads_from_architectures(hf: dict, default: list[str]) -> list[str]:
    """A first guess at the heads from ``architectures``; the weights present decide in the end.
    It matters for sequence classification, whose pooler lives at ``classifier.dense``."""
    archs = hf.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return ["pooler", "classify"]
    return default


def check_mlm_activation(c: ModelConfig, hf_archs, family: str) -> None:
    """RoBERTa's and ELECTRA's MLM heads apply gelu whatever ``hidden_act`` says; ours
    applies ``model.activation``, so the two agree only for gelu."""
    if c.activation != "gelu" and any(a.endswith("ForMaskedLM") for a in hf_archs):
        raise ConversionError(
            f"{family}'s masked-LM head always applies gelu, but the body uses {c.activation!r}; "
            "sesame's MLM head shares the body's activation, so this checkpoint cannot be converted exactly"
        )


def config_from_hf(hf: dict) -> ModelConfig:
    pad = hf.get("pad_token_id")
    pad = 1 if pad is None else pad
    offset = pad + 1  # HF: position = padding_idx + 1 + (index among real tokens)
    c = encoder_config(
        hf, "roberta", max_positions=hf["max_position_embeddings"] - offset, position_offset=offset,
        pad_token_id=pad, tie_embeddings=hf.get("tie_word_embeddings", True),
        heads=heads_from_architectures(hf, ["mlm"]),
    )
    check_mlm_activation(c, hf.get("architectures") or [], "RoBERTa")
    return c


def config_to_hf(c: ModelConfig) -> dict:
    if c.position_offset != c.pad_token_id + 1:
        raise ConversionError(
            f"a RoBERTa export needs model.position_offset = pad_token_id + 1 = {c.pad_token_id + 1}, "
            f"got {c.position_offset}"
        )
    if c.embed_dim != c.hidden:
        raise ConversionError("RoBERTa has no factorised embeddings; model.embedding_size must equal hidden")
    if "mlm" in c.heads and c.activation != "gelu":
        raise ConversionError(f"RoBERTa's MLM head applies gelu; model.activation = {c.activation!r}")
    out = encoder_config_to_hf(c, "roberta")
    out.update(bos_token_id=0, eos_token_id=2, num_labels=c.num_labels)
    return out


def head_rules(c: ModelConfig) -> dict:
    classify = "classify" in c.heads
    mlm = [
        *linear("heads.mlm.dense", "lm_head.dense", base=False),
        *linear("heads.mlm.norm", "lm_head.layer_norm", base=False),
        rule("heads.mlm.decoder.bias", "lm_head.bias", base=False),
    ]
    if not c.tie_embeddings:
        mlm.append(rule("heads.mlm.decoder.weight", "lm_head.decoder.weight", base=False))
    return {
        # RobertaClassificationHead = dense + tanh on <s> (our pooler), then out_proj (our classifier)
        "pooler": linear("heads.pooler.dense", "classifier.dense", base=False) if classify
        else linear("heads.pooler.dense", "pooler.dense"),
        "mlm": mlm,
        "classify": linear("heads.classify.classifier", "classifier.out_proj", base=False),
    }


def architecture(heads: list[str]) -> str:
    if "classify" in heads:
        if "pooler" not in heads:
            raise ConversionError(
                "RobertaForSequenceClassification classifies through a dense + tanh layer: "
                "give the model heads = ['pooler', 'classify'] to export it"
            )
        return "RobertaForSequenceClassification"
    if "mlm" in heads:
        return "RobertaForMaskedLM"
    return "RobertaModel"


FAMILY = register("family", "roberta")(Family(
    name="roberta",
    model_types=("roberta",),
    prefix="roberta.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
))
