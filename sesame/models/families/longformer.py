"""Longformer: RoBERTa's encoder with ``longformer`` attention (a sliding window per
layer, and global tokens with their own q/k/v projections). Global tokens come
from ``Layout.global_mask`` (HF's ``global_attention_mask``); a sequence
classifier, like HF's, puts one on [CLS] (``global_positions = [0]``)."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families import roberta
from sesame.models.families.bert import body_rules as bert_body_rules, encoder_config
from sesame.models.hf import Family, fused


def config_from_hf(hf: dict) -> ModelConfig:
    pad = hf.get("pad_token_id")
    pad = 1 if pad is None else pad
    offset = pad + 1
    layers = hf["num_hidden_layers"]
    window = hf.get("attention_window", 512)
    window = list(window) if isinstance(window, (list, tuple)) else [window] * layers
    heads = roberta.heads_from_architectures(hf, ["mlm"])
    options = {"window": window}
    if "classify" in heads:
        options["global_positions"] = [0]  # HF's sequence classifier: global attention on [CLS]
    c = encoder_config(
        hf, "longformer", max_positions=hf["max_position_embeddings"] - offset, position_offset=offset,
        pad_token_id=pad, tie_embeddings=hf.get("tie_word_embeddings", True), heads=heads,
        attention="longformer", attention_options=options,
    )
    roberta.check_mlm_activation(c, hf.get("architectures") or [], "Longformer")
    return c


def config_to_hf(c: ModelConfig) -> dict:
    if c.attention != "longformer":
        raise ConversionError(f"a Longformer export needs model.attention = 'longformer', got {c.attention!r}")
    opts = dict(c.attention_options)
    dilation = opts.get("dilation", 1)
    if dilation != 1 and set(dilation if isinstance(dilation, list) else [dilation]) != {1}:
        raise ConversionError("Hugging Face's Longformer has no dilated windows; set dilation = 1 to export")
    glob = opts.get("global_positions", [])
    if glob and not (glob == [0] and "classify" in c.heads):
        raise ConversionError("Hugging Face's Longformer takes global tokens from its input "
                              "(global_attention_mask); only a classifier's [CLS] is global by default")
    window = opts.get("window", 512)
    out = roberta.config_to_hf(c.replace(family="roberta"))
    out.update(model_type="longformer", sep_token_id=2,
               attention_window=window if isinstance(window, list) else [window] * c.layers)
    return out


def body_rules(c: ModelConfig) -> list:
    out = bert_body_rules(c)
    h = c.num_heads * c.dim_per_head
    for i in range(c.layers):
        out += fused(f"body.layers.{i}.attn.kernel.global_qkv",
                     [f"encoder.layer.{i}.attention.self.{n}_global" for n in ("query", "key", "value")], (h, h, h))
    return out


def architecture(heads: list[str]) -> str:
    name = roberta.architecture(heads)
    return name.replace("Roberta", "Longformer")


FAMILY = register("family", "longformer")(Family(
    name="longformer",
    model_types=("longformer",),
    prefix="longformer.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=roberta.head_rules,
    architecture=architecture,
    attention=("longformer",),
))
