"""XLNet (Yang et al., 2019): a post-norm encoder over Transformer-XL relative attention
(``attention = "xl"``) with relative segment encodings, no absolute positions and no
segment embedding, attention projections without biases, a two-stream query stream
for the permutation LM, and an LM head with a bias tied to the embedding.

HF keeps each projection as a (d_model, heads, d_head) tensor; ours are linear layers,
so the key map reshapes them (``heads_in`` / ``heads_out``)."""
from __future__ import annotations

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConversionError
from sesame.models.families.bert import ACT_TO_HF, activation_from_hf
from sesame.models.hf import Family, linear, rule


def heads_in(t):
    """HF (d_model, heads, d_head) -> our Linear weight (heads * d_head, d_model)."""
    return t.reshape(t.shape[0], -1).t()


def _heads_out(c: ModelConfig):
    return lambda t: t.t().reshape(c.hidden, c.num_heads, c.dim_per_head)


def _flat(t):
    return t.reshape(-1)


def config_from_hf(hf: dict) -> ModelConfig:
    if hf.get("attn_type", "bi") != "bi":
        raise ConversionError(f"XLNet attn_type {hf['attn_type']!r} is not supported (only 'bi')")
    for key in ("bi_data", "same_length"):
        if hf.get(key):
            raise ConversionError(f"XLNet {key} = true is not supported")
    if hf.get("reuse_len"):
        raise ConversionError("XLNet reuse_len is not supported (memories keep the last mem_len states)")
    d_head = hf.get("d_head") or hf["d_model"] // hf["n_head"]
    return ModelConfig(
        family="xlnet", arch="encoder", vocab_size=hf["vocab_size"], hidden=hf["d_model"], layers=hf["n_layer"],
        num_heads=hf["n_head"], head_dim=d_head, intermediate=hf["d_inner"], type_vocab_size=0,
        position="none", attention="xl", relative_segments=True, two_stream=True,
        clamp_len=max(hf.get("clamp_len", -1), 0), mem_len=hf.get("mem_len") or 0,
        activation=activation_from_hf(hf.get("ff_activation", "gelu")), norm_eps=hf.get("layer_norm_eps", 1e-12),
        embedding_norm=False, attention_bias=False, lm_bias=True, dropout=hf.get("dropout", 0.1),
        attention_dropout=hf.get("dropout", 0.1), pad_token_id=hf.get("pad_token_id") or 0,
        init_std=hf.get("initializer_range", 0.02), max_positions=hf.get("max_position_embeddings", 512) or 512,
        heads=["lm"], pool_last=True, num_labels=len(hf.get("id2label") or {}) or hf.get("num_labels", 2),
    )


def config_to_hf(c: ModelConfig) -> dict:
    want = dict(arch="encoder", attention="xl", relative_segments=True, position="none", pool_last=True,
                type_vocab_size=0, embedding_norm=False, attention_bias=False, prenorm=False, feedforward="mlp",
                share_layers=False, norm="layernorm", bias=True)
    bad = {k: getattr(c, k) for k, v in want.items() if getattr(c, k) != v}
    if bad or c.kv_heads != c.num_heads:
        raise ConversionError(f"an XLNet export needs {want}; this model has {bad or 'grouped-query attention'}")
    return {
        "model_type": "xlnet", "vocab_size": c.vocab_size, "d_model": c.hidden, "n_layer": c.layers,
        "n_head": c.num_heads, "d_head": c.dim_per_head, "d_inner": c.intermediate,
        "ff_activation": ACT_TO_HF[c.activation], "attn_type": "bi", "layer_norm_eps": c.norm_eps,
        "dropout": c.dropout, "mem_len": c.mem_len or None, "clamp_len": c.clamp_len or -1,
        "initializer_range": c.init_std, "pad_token_id": c.pad_token_id, "tie_word_embeddings": c.tie_embeddings,
        "bi_data": False, "same_length": False, "reuse_len": None, "num_labels": c.num_labels,
        "summary_type": "last", "summary_use_proj": True, "summary_activation": "tanh",
    }


def body_rules(c: ModelConfig) -> list:
    out_heads = _heads_out(c)
    flat_hd = lambda t: t.reshape(c.num_heads, c.dim_per_head)  # noqa: E731
    out = [rule("body.embed.tokens.weight", "word_embedding.weight"),
           rule("body.query.w", "mask_emb", to_ours=_flat, to_theirs=lambda t: t.reshape(1, 1, -1))]
    h = c.num_heads * c.dim_per_head
    for i in range(c.layers):
        o, t = f"body.layers.{i}", f"layer.{i}"
        out += [
            rule(f"{o}.attn.qkv.weight", *[f"{t}.rel_attn.{n}" for n in "qkv"], sizes=(h, h, h),
                 to_ours=heads_in, to_theirs=out_heads),
            rule(f"{o}.attn.out.weight", f"{t}.rel_attn.o", to_ours=lambda x: x.reshape(x.shape[0], -1),
                 to_theirs=lambda x: x.reshape(c.hidden, c.num_heads, c.dim_per_head)),
            rule(f"{o}.attn.kernel.r.weight", f"{t}.rel_attn.r", to_ours=heads_in, to_theirs=out_heads),
            rule(f"{o}.attn.kernel.u", f"{t}.rel_attn.r_w_bias", to_theirs=flat_hd),
            rule(f"{o}.attn.kernel.v", f"{t}.rel_attn.r_r_bias", to_theirs=flat_hd),
            rule(f"{o}.attn.kernel.segment_bias", f"{t}.rel_attn.r_s_bias"),
            rule(f"{o}.attn.kernel.segment", f"{t}.rel_attn.seg_embed"),
            *linear(f"{o}.attn_norm", f"{t}.rel_attn.layer_norm"),
            *linear(f"{o}.ffn.up", f"{t}.ff.layer_1"),
            *linear(f"{o}.ffn.down", f"{t}.ff.layer_2"),
            *linear(f"{o}.ffn_norm", f"{t}.ff.layer_norm"),
        ]
    return out


def head_rules(c: ModelConfig) -> dict:
    """LM; sequence classification = HF's sequence summary (dense + tanh on the last token,
    our pooler) + logits_proj; token classification."""
    return {
        "lm": [rule("heads.lm.decoder.bias", "lm_loss.bias", base=False)],
        "pooler": linear("heads.pooler.dense", "sequence_summary.summary", base=False),
        "classify": linear("heads.classify.classifier", "logits_proj", base=False),
        "tag": linear("heads.tag.classifier", "classifier", base=False),
    }


def architecture(heads: list[str]) -> str:
    if "lm" in heads:
        return "XLNetLMHeadModel"
    if "classify" in heads:
        return "XLNetForSequenceClassification"
    if "tag" in heads:
        return "XLNetForTokenClassification"
    return "XLNetModel"


FAMILY = register("family", "xlnet")(Family(
    name="xlnet",
    model_types=("xlnet",),
    prefix="transformer.",
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    body_rules=body_rules,
    head_rules=head_rules,
    architecture=architecture,
    ignore=(r"lm_loss\.weight$",),
    attention=("xl",),
))
