"""Shaw et al. relative positions (``position = "shaw"``).

transformers >= 5 removed BERT's ``position_embedding_type = "relative_key"`` /
``"relative_key_query"``, so the reference here is a hand-written functional BERT
forward over a HF state dict. Its absolute-position path is first checked against
the installed ``transformers.BertModel`` number for number; its relative terms
follow the transformers 4.x formula (scores += q . a[i-j] (+ k . a[i-j]) before
the 1/sqrt(d) scale, a = ``distance_embedding`` indexed by i - j + max_pos - 1)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from sesame.config.model import ModelConfig
from sesame.models.hf import convert_from_hf, convert_to_hf, from_hf
from sesame.models.model import build_model
from sesame.nn.attention.multihead import SelfAttention
from sesame.nn.layout import Layout

transformers = pytest.importorskip("transformers")

VOCAB, MAXPOS, HID, HEADS, LAYERS = 53, 24, 32, 4, 2


def ref_bert(sd: dict, ids, mask, types, kind: str, eps=1e-12):
    """BERT's encoder by hand; ``kind``: absolute | relative_key | relative_key_query."""
    p = lambda k: sd[f"bert.{k}"] if f"bert.{k}" in sd else sd[k]  # noqa: E731
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (HID,), p(f"{n}.weight"), p(f"{n}.bias"), eps)  # noqa
    lin = lambda x, n: x @ p(f"{n}.weight").T + p(f"{n}.bias")  # noqa: E731
    t = ids.shape[1]
    x = p("embeddings.word_embeddings.weight")[ids] + p("embeddings.token_type_embeddings.weight")[types]
    if kind == "absolute":
        x = x + p("embeddings.position_embeddings.weight")[:t]
    x = ln(x, "embeddings.LayerNorm")
    d = HID // HEADS
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    pos = torch.arange(t)
    for i in range(LAYERS):
        a = f"encoder.layer.{i}.attention"
        split = lambda y: y.view(y.shape[0], t, HEADS, d).transpose(1, 2)  # noqa: E731
        q, k, v = (split(lin(x, f"{a}.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2)
        if kind != "absolute":
            table = p(f"{a}.self.distance_embedding.weight")
            e = table[pos[:, None] - pos[None, :] + MAXPOS - 1]  # (l, r, d)
            scores = scores + torch.einsum("bhld,lrd->bhlr", q, e)
            if kind == "relative_key_query":
                scores = scores + torch.einsum("bhrd,lrd->bhlr", k, e)
        probs = torch.softmax(scores / math.sqrt(d) + ext, -1)
        ctx = (probs @ v).transpose(1, 2).reshape(x.shape[0], t, HID)
        x = ln(x + lin(ctx, f"{a}.output.dense"), f"{a}.output.LayerNorm")
        h = torch.nn.functional.gelu(lin(x, f"encoder.layer.{i}.intermediate.dense"))
        x = ln(x + lin(h, f"encoder.layer.{i}.output.dense"), f"encoder.layer.{i}.output.LayerNorm")
    return x


@pytest.fixture(scope="module")
def hf_bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=HID, num_hidden_layers=LAYERS,
                                  num_attention_heads=HEADS, intermediate_size=37, max_position_embeddings=MAXPOS)
    model = transformers.BertModel(cfg, add_pooling_layer=False)
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(torch.randn_like(prm) * 0.1)
    return model.eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 20), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, :5] = 0
    types = torch.zeros_like(ids)
    types[:, 9:] = 1
    return ids, mask, types


def test_reference_matches_transformers_absolute(hf_bert):
    ids, mask, types = _batch()
    with torch.no_grad():
        theirs = hf_bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    mine = ref_bert({k: v for k, v in hf_bert.state_dict().items()}, ids, mask, types, "absolute")
    keep = mask.bool()
    assert (mine[keep] - theirs[keep]).abs().max() < 1e-5


def _write_relative(hf_bert, kind, path):
    """A transformers-4.x style relative BERT checkpoint (config.json + safetensors)."""
    g = torch.Generator().manual_seed(3)
    sd = {k: v.clone().contiguous() for k, v in hf_bert.state_dict().items()}
    for i in range(LAYERS):
        sd[f"encoder.layer.{i}.attention.self.distance_embedding.weight"] = (
            torch.randn(2 * MAXPOS - 1, HID // HEADS, generator=g) * 0.3)
    cfg = hf_bert.config.to_dict()
    cfg.update(position_embedding_type=kind, architectures=["BertModel"])
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    save_file(sd, str(path / "model.safetensors"))
    return sd


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_hf_relative_import_export(hf_bert, kind, tmp_path):
    sd = _write_relative(hf_bert, kind, tmp_path / "hf")
    model, report = from_hf(tmp_path / "hf")
    assert not report.missing and not report.unexpected, str(report)
    c = model.config
    assert (c.position, c.relative_max_distance, c.relative_key_query) == ("shaw", MAXPOS - 1, kind != "relative_key")
    ids, mask, types = _batch()
    with torch.no_grad():
        mine = model.eval()(ids, mask, types).hidden
    ref = ref_bert(sd, ids, mask, types, kind)
    keep = mask.bool()
    err = (mine[keep] - ref[keep]).abs().max().item()
    assert err < 1e-4, err
    convert_from_hf(tmp_path / "hf", tmp_path / "ours")
    convert_to_hf(tmp_path / "ours", tmp_path / "back")
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["position_embedding_type"] == kind and cfg["max_position_embeddings"] == MAXPOS
    expected = {k: v for k, v in sd.items() if "position_embeddings" not in k and "position_ids" not in k}
    assert set(k.removeprefix("bert.") for k in back) == set(expected)
    for k, v in back.items():
        assert torch.equal(v, expected[k.removeprefix("bert.")]), k


def _brute_attention(x, attn: SelfAttention, clip: int, key_query: bool, causal: bool):
    """Shaw attention by explicit loops over (query, key) pairs."""
    b, t, _ = x.shape
    hd, hh = attn.dim, attn.heads
    q, k, v = attn.qkv(x).split(attn.sizes, dim=-1)
    q, k, v = (y.view(b, t, hh, hd) for y in (q, k, v))
    ak, av = attn.relative.keys.weight, attn.relative.values.weight
    out = torch.zeros(b, t, hh, hd)
    for bi in range(b):
        for h in range(hh):
            for i in range(t):
                keys = range(i + 1) if causal else range(t)
                rel = [max(-clip, min(clip, i - j)) + clip for j in keys]
                s = torch.stack([(q[bi, i, h] @ (k[bi, j, h] + ak[r]) + (k[bi, j, h] @ ak[r] if key_query else 0))
                                 for j, r in zip(keys, rel)]) / math.sqrt(hd)
                p = torch.softmax(s, 0)
                out[bi, i, h] = sum(p[n] * (v[bi, j, h] + av[r]) for n, (j, r) in enumerate(zip(keys, rel)))
    return attn.out(out.reshape(b, t, hh * hd))


@pytest.mark.parametrize("causal,key_query", [(False, True), (True, False)])
def test_shaw_values_and_clipping_brute_force(causal, key_query):
    cfg = ModelConfig(hidden=16, num_heads=2, intermediate=20, position="shaw", relative_max_distance=2,
                      relative_values=True, relative_key_query=key_query, attention_dropout=0.0,
                      arch="decoder" if causal else "encoder", heads=["lm"] if causal else ["mlm"])
    torch.manual_seed(0)
    attn = SelfAttention(cfg).eval()
    with torch.no_grad():
        for prm in attn.parameters():
            prm.normal_(0, 0.5)
        x = torch.randn(2, 7, 16)
        mine = attn(x, Layout(causal=causal))
        ref = _brute_attention(x, attn, 2, key_query, causal)
    assert (mine - ref).abs().max() < 1e-5


def test_shaw_decoder_cache_equals_full():
    cfg = ModelConfig(arch="decoder", heads=["lm"], vocab_size=40, hidden=16, num_heads=2, layers=2,
                      intermediate=20, position="shaw", relative_max_distance=3, relative_values=True,
                      type_vocab_size=0, dropout=0.0, attention_dropout=0.0, prenorm=True)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ids = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        full = model(ids).logits["lm"]
        cache = model.new_cache()
        steps = [model.step(ids[:, :4], cache)[0]] + [model.step(ids[:, i:i + 1], cache)[0] for i in range(4, 9)]
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_shaw_config_errors():
    from sesame.errors import ConfigError

    with pytest.raises(ConfigError, match="relative_values"):
        ModelConfig.from_dict({"relative_values": True})
    cfg = ModelConfig(position="shaw", relative_values=True, hidden=16, num_heads=2, intermediate=8)
    from sesame.models.hf import to_hf
    from sesame.errors import ConversionError

    with pytest.raises(ConversionError, match="Shaw variant"):
        to_hf(build_model(cfg.replace(family="bert")), "/tmp/i12/never")
