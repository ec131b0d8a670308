"""T5's own initialisation (``model.init = 't5'``): the std of each weight type is T5's
scale (d_model, d_kv, heads, d_ff), the same one transformers' T5 draws, for v1.1 (gated,
untied) and v1.0 (ReLU, tied); re-initialising (``transfer_layers = 'none'``) draws it again;
layouts it does not know are refused."""
from __future__ import annotations

import pytest
import torch

from sesame.config import load_config
from sesame.errors import SesameError
from sesame.models import build_model
from sesame.transfer import reinit

D, DK, HEADS, FF, VOCAB = 128, 32, 4, 256, 512


def _expected() -> dict[str, float]:
    return {"tokens": 1.0, "q": (D * DK) ** -0.5, "kv": D ** -0.5, "out": (HEADS * DK) ** -0.5,
            "ff_in": D ** -0.5, "ff_out": FF ** -0.5, "table": D ** -0.5, "lm_head": 1.0}


def _ours(model) -> dict[str, torch.Tensor]:
    """Weights of each type, concatenated over layers and both stacks."""
    p = dict(model.named_parameters())
    q_rows = HEADS * DK
    groups = {k: [] for k in _expected()}
    for name, w in p.items():
        w = w.detach()
        if name.endswith("attn.qkv.weight"):
            groups["q"].append(w[:q_rows])
            groups["kv"].append(w[q_rows:])
        elif name.endswith("cross.q.weight"):
            groups["q"].append(w)
        elif name.endswith("cross.kv.weight"):
            groups["kv"].append(w)
        elif name.endswith(("attn.out.weight", "cross.out.weight")):
            groups["out"].append(w)
        elif name.endswith("ffn.up.weight"):
            groups["ff_in"].append(w)
        elif name.endswith("ffn.down.weight"):
            groups["ff_out"].append(w)
        elif name.endswith("table.weight"):
            groups["table"].append(w)
        elif name == "body.embed.tokens.weight":
            groups["tokens"].append(w)
        elif name == "heads.lm.decoder.weight":
            groups["lm_head"].append(w)
    return {k: torch.cat([x.flatten() for x in v]) for k, v in groups.items() if v}


def _hf(feed_forward: str, tied: bool) -> dict[str, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=D, d_kv=DK, d_ff=FF, num_layers=2, num_heads=HEADS,
                                feed_forward_proj=feed_forward, tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(cfg)
    groups = {k: [] for k in _expected()}
    for name, w in model.named_parameters():
        w = w.detach()
        last = name.rsplit(".", 2)[-2]
        key = {"q": "q", "k": "kv", "v": "kv", "o": "out", "wi": "ff_in", "wi_0": "ff_in", "wi_1": "ff_in",
               "relative_attention_bias": "table", "shared": "tokens", "lm_head": "lm_head"}.get(last)
        if name == "lm_head.weight":
            key = None if tied else "lm_head"
        if name.endswith("DenseReluDense.wo.weight"):
            key = "ff_out"
        if key is not None and "embed_tokens" not in name:
            groups[key].append(w)
    return {k: torch.cat([x.flatten() for x in v]) for k, v in groups.items() if v}


def _model(*sets):
    run = load_config("t5-tiny", [f"model.vocab_size={VOCAB}", "model.init='t5'", *sets])
    torch.manual_seed(0)
    return build_model(run.model)


def _check(stats: dict[str, torch.Tensor], who: str) -> None:
    for kind, want in _expected().items():
        if kind not in stats:
            continue
        got = stats[kind].std().item()
        tol = 0.25 if kind == "table" else 0.03  # the position tables have 32 x heads entries
        assert abs(got / want - 1) < tol, f"{who} {kind}: std {got:.4f}, T5's {want:.4f}"
        assert abs(stats[kind].mean().item()) < 4 * want / stats[kind].numel() ** 0.5


@pytest.mark.parametrize("feed_forward,tied", [("gated-gelu", False), ("relu", True)])
def test_std_per_weight_type_is_t5s_and_transformers(feed_forward, tied):
    sets = [] if feed_forward == "gated-gelu" else ["model.feedforward='mlp'", "model.activation='relu'",
                                                    "model.tie_embeddings=true", "model.lm_rescale=true"]
    model = _model(*sets)
    assert model.config.intermediate == FF and model.config.dim_per_head == DK and model.config.hidden == D
    ours = _ours(model)
    assert ("lm_head" in ours) == (not tied)
    _check(ours, "sesame")
    _check(_hf(feed_forward, tied), "transformers")  # the same scales in the reference implementation
    norms = [w for n, w in model.named_parameters() if "norm" in n]
    assert norms and all(torch.equal(w, torch.ones_like(w)) for w in norms)


def test_default_init_unchanged_and_reinit_draws_t5_again():
    plain = build_model(load_config("t5-tiny", [f"model.vocab_size={VOCAB}"]).model)
    std = plain.config.init_std
    assert plain.config.init == "normal"
    assert abs(plain.body.encoder[0].attn.out.weight.std().item() / std - 1) < 0.03  # N(0, init_std)
    model = _model()
    before = model.body.encoder[0].ffn.down.weight.detach().clone()
    reinit(model, keep_embeddings=False)
    after = model.body.encoder[0].ffn.down.weight.detach()
    assert not torch.equal(before, after)
    _check(_ours(model), "re-initialised")


def test_unknown_layout_refused():
    with pytest.raises(SesameError, match="init = 't5'"):
        build_model(load_config("bart-tiny", ["model.init='t5'"]).model)
