"""T5 (Raffel et al. 2020): a pre-norm encoder-decoder with T5's RMSNorm (no mean
subtraction, no bias), no biases anywhere, unscaled attention, one bucketed
relative position bias per stack (computed once and shared by its layers; the
decoder's is causal), a ReLU MLP (v1.0) or a gated-GELU (v1.1) feed-forward, and
an LM head that is tied with the decoder output scaled by ``hidden ** -0.5``
(v1.0) or untied without the scale (v1.1). Sentinels are the tokenizer's
``<extra_id_N>`` tokens (see ``objectives/t5_span.py``).

HF key map: q/k/v fuse into ``attn.qkv``, EncDecAttention's k/v into
``cross.kv``, v1.1's ``wi_0`` (gate) and ``wi_1`` into ``ffn.up``."""
from __future__ import annotations

import torch

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConfigError, ConversionError
from sesame.models.hf import Family, fused, rule

FFN_FROM_HF = {"relu": ("mlp", "relu"), "gated-gelu": ("glu", "gelu_tanh"), "gelu": ("mlp", "gelu"),
               "gated-relu": ("glu", "relu"), "gated-silu": ("glu", "silu"), "silu": ("mlp", "silu")}
FFN_TO_HF = {v: k for k, v in FFN_FROM_HF.items()}


def config_from_hf(hf: dict) -> ModelConfig:
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in FFN_FROM_HF:
        raise ConversionError(f"T5 feed_forward_proj {proj!r} is not supported; supported: {', '.join(FFN_FROM_HF)}")
    feedforward, act = FFN_FROM_HF[proj]
    heads, d_kv, d_model = hf["num_heads"], hf["d_kv"], hf["d_model"]
    # transformers >= 5 keeps the v1.0/v1.1 switch in scale_decoder_outputs; older configs in tie_word_embeddings
    rescale = bool(hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True)))
    return ModelConfig.from_dict(dict(
        family="t5", arch="encoder-decoder", vocab_size=hf["vocab_size"], hidden=d_model,
        layers=hf["num_layers"], decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        num_heads=heads, head_dim=d_kv if d_kv * heads != d_model else None, intermediate=hf["d_ff"],
        max_positions=hf.get("n_positions", 512), type_vocab_size=0, position="t5",
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        norm="rmsnorm", norm_eps=hf.get("layer_norm_epsilon", 1e-6), prenorm=True, embedding_norm=False,
        final_norm=True, feedforward=feedforward, activation=act, attention_scale=1.0, bias=False,
        dropout=hf.get("dropout_rate", 0.1), attention_dropout=hf.get("dropout_rate", 0.1),
        heads=["lm"], tie_embeddings=True, lm_rescale=rescale,
        pad_token_id=hf.get("pad_token_id") or 0, init_std=hf.get("initializer_factor", 1.0) * 0.05,
    ))


def adjust(config: ModelConfig, state: dict) -> ModelConfig:
    """The head is tied when the checkpoint has no separate ``lm_head.weight`` (or an equal one):
    transformers >= 5 builds every T5 tied, so v1.1's switch is the scale, not the tie."""
    head, shared = state.get("lm_head.weight"), state.get("shared.weight")
    tied = head is None or shared is None or (head.shape == shared.shape and bool(torch.equal(head, shared)))
    return config.replace(tie_embeddings=tied)


def t5_init(model, keep: set[str] = frozenset()) -> int:
    """T5's own initialisation (Mesh TensorFlow's; transformers' ``T5PreTrainedModel._init_weights``
    with ``initializer_factor = 1``), per weight type, for ``model.init = 't5'``: token
    embeddings N(0, 1) (and an untied LM head N(0, 1)); queries N(0, (d_model * d_kv) ** -0.5),
    which folds the 1/sqrt(d_kv) attention scale T5 leaves out into the weights; keys, values,
    the feed-forward input (both halves of a gated one) and the relative position tables
    N(0, d_model ** -0.5); attention outputs N(0, (heads * d_kv) ** -0.5); the feed-forward
    output N(0, d_ff ** -0.5); norms 1, biases 0. Body children named in ``keep`` are left as
    they are (``transfer.reinit``). An unknown body weight is an error, not a silent default.
    Returns the number of tensors set."""
    c = model.config
    if c.arch != "encoder-decoder" or c.position != "t5":
        raise ConfigError(f"model.init = 't5' knows T5's encoder-decoder layout (position = 't5'); this model "
                          f"is arch = {c.arch!r}, position = {c.position!r}: use init = 'normal'")
    d, dk = c.hidden, c.dim_per_head
    q_rows = c.num_heads * dk
    scale = {"attn.out": (c.num_heads * dk) ** -0.5, "cross.out": (c.num_heads * dk) ** -0.5,
             "cross.q": (d * dk) ** -0.5, "cross.kv": d ** -0.5, "ffn.up": d ** -0.5,
             "ffn.down": c.intermediate ** -0.5, "table": d ** -0.5, "tokens": 1.0}
    count = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            parts = name.split(".")
            if parts[0] == "body" and parts[1] in keep or any(x.endswith("adapter") for x in parts):
                continue  # kept, or an adapter (which starts as the identity)
            if parts[0] == "heads":  # an untied LM head as T5's; other heads keep the generic init
                if name == "heads.lm.decoder.weight":
                    p.normal_(0.0, 1.0)
                    count += 1
                continue
            kind = ".".join(parts[-3:-1]) if parts[-3] in ("attn", "cross", "ffn") else parts[-2]
            if parts[-1] == "bias":
                p.zero_()
            elif p.dim() == 1 and "norm" in parts[-2]:
                p.fill_(1.0)
            elif kind == "attn.qkv":
                p[:q_rows].normal_(0.0, (d * dk) ** -0.5)
                p[q_rows:].normal_(0.0, d ** -0.5)
            elif kind in scale:
                p.normal_(0.0, scale[kind])
            else:
                raise ConfigError(f"T5's initialisation does not know the weight {name}; use model.init = 'normal'")
            count += 1
    return count


def _check_exportable(c: ModelConfig) -> None:
    want = dict(arch="encoder-decoder", position="t5", norm="rmsnorm", prenorm=True, embedding_norm=False,
                bias=False, attention_scale=1.0, type_vocab_size=0, share_layers=False, embedding_size=None,
                lm_bias=False, adapter_size=0)
    bad = [f"{k} = {getattr(c, k)!r}" for k, v in want.items() if getattr(c, k) != v]
    if c.kv_heads != c.num_heads:
        bad.append(f"num_kv_heads = {c.num_kv_heads}")
    if not c.use_final_norm:
        bad.append("final_norm = false")
    if (c.feedforward, c.activation) not in FFN_TO_HF:
        bad.append(f"feedforward {c.feedforward}/{c.activation}")
    if bad:
        raise ConversionError(f"this model cannot be written as T5: it has {', '.join(bad)}")


def config_to_hf(c: ModelConfig) -> dict:
    _check_exportable(c)
    return {
        "model_type": "t5", "vocab_size": c.vocab_size, "d_model": c.hidden, "d_kv": c.dim_per_head,
        "d_ff": c.intermediate, "num_layers": c.layers, "num_decoder_layers": c.decoder_layers or c.layers,
        "num_heads": c.num_heads, "relative_attention_num_buckets": c.relative_buckets,
        "relative_attention_max_distance": c.relative_max_distance, "dropout_rate": c.dropout,
        "layer_norm_epsilon": c.norm_eps, "feed_forward_proj": FFN_TO_HF[(c.feedforward, c.activation)],
        "is_encoder_decoder": True, "pad_token_id": c.pad_token_id, "eos_token_id": 1,
        "decoder_start_token_id": c.pad_token_id, "initializer_factor": c.init_std / 0.05,
        # read by transformers as "scale the decoder output" (v1.0) vs not (v1.1); an untied
        # head is written as its own lm_head.weight either way
        "tie_word_embeddings": c.lm_rescale,
    }


def _attention(ours: str, theirs: str, c: ModelConfig, cross: bool = False) -> list:
    h = c.num_heads * c.dim_per_head
    if cross:
        return [
            rule(f"{ours}.q.weight", f"{theirs}.q.weight"),
            *fused(f"{ours}.kv", [f"{theirs}.k", f"{theirs}.v"], (h, h), bias=False),
            rule(f"{ours}.out.weight", f"{theirs}.o.weight"),
        ]
    return [
        *fused(f"{ours}.qkv", [f"{theirs}.q", f"{theirs}.k", f"{theirs}.v"], (h, h, h), bias=False),
        rule(f"{ours}.out.weight", f"{theirs}.o.weight"),
    ]


def _ffn(ours: str, theirs: str, c: ModelConfig) -> list:
    if c.feedforward == "glu":
        up = fused(f"{ours}.up", [f"{theirs}.wi_0", f"{theirs}.wi_1"], (c.intermediate, c.intermediate), bias=False)
    else:
        up = [rule(f"{ours}.up.weight", f"{theirs}.wi.weight")]
    return [*up, rule(f"{ours}.down.weight", f"{theirs}.wo.weight")]


def body_rules(c: ModelConfig) -> list:
    out = [
        rule("body.embed.tokens.weight", "shared.weight"),
        rule("body.position.table.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
        rule("body.decoder_position.table.weight",
             "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
    ]
    for i in range(c.layers):
        ours, theirs = f"body.encoder.{i}", f"encoder.block.{i}.layer"
        out += [
            *_attention(f"{ours}.attn", f"{theirs}.0.SelfAttention", c),
            rule(f"{ours}.attn_norm.weight", f"{theirs}.0.layer_norm.weight"),
            *_ffn(f"{ours}.ffn", f"{theirs}.1.DenseReluDense", c),
            rule(f"{ours}.ffn_norm.weight", f"{theirs}.1.layer_norm.weight"),
        ]
    for i in range(c.decoder_layers or c.layers):
        ours, theirs = f"body.decoder.{i}", f"decoder.block.{i}.layer"
        out += [
            *_attention(f"{ours}.attn", f"{theirs}.0.SelfAttention", c),
            rule(f"{ours}.attn_norm.weight", f"{theirs}.0.layer_norm.weight"),
            *_attention(f"{ours}.cross", f"{theirs}.1.EncDecAttention", c, cross=True),
            rule(f"{ours}.cross_norm.weight", f"{theirs}.1.layer_norm.weight"),
            *_ffn(f"{ours}.ffn", f"{theirs}.2.DenseReluDense", c),
            rule(f"{ours}.ffn_norm.weight", f"{theirs}.2.layer_norm.weight"),
        ]
    out += [rule("body.encoder_norm.weight", "encoder.final_layer_norm.weight"),
            rule("body.decoder_norm.weight", "decoder.final_layer_norm.weight")]
    return out


def head_rules(c: ModelConfig) -> dict:
    if c.tie_embeddings:
        return {"lm": [rule("heads.lm.decoder.weight", "shared.weight")]}
    return {"lm": [rule("heads.lm.decoder.weight", "lm_head.weight")]}


def architecture(heads: list[str]) -> str:
    return "T5ForConditionalGeneration" if "lm" in heads else "T5Model"


FAMILY = register("family", "t5")(Family(
    name="t5",
    model_types=("t5",),
    prefix="",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    adjust=adjust,
    ignore=(r"(encoder|decoder)\.embed_tokens\.weight$", r"lm_head\.weight$",
            r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$"),
))
