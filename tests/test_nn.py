"""Building blocks: layouts and masks, kernels, positions, cache on = cache off."""
import pytest
import torch

from sesame.config import ModelConfig, register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.nn import Layout
from sesame.nn.attention import FullAttention
from sesame.nn.attention.kernel import Kernel
from sesame.nn.positions import T5Bias, alibi_slopes

torch.manual_seed(0)


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=50, hidden=32, layers=2, num_heads=4, intermediate=48, max_positions=64,
                dropout=0.0, attention_dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def decoder(**kw) -> ModelConfig:
    return tiny(arch="decoder", heads=["lm"], prenorm=True, embedding_norm=False, type_vocab_size=0, **kw)


def test_fully_masked_rows_give_zeros_not_nan():
    q = torch.randn(2, 4, 5, 8)
    padding = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out = FullAttention(0.35, 0.0)(q, q, q, Layout(key_padding=padding))
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0  # nothing visible: zeros
    # left padding + causal: the first query rows of row 0 see only padding
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = FullAttention(0.35, 0.0)(q, q, q, Layout(causal=True, key_padding=left))
    assert torch.isfinite(out).all() and out[0, :, :2].abs().max() == 0


def test_explicit_mask_equals_structured_layout():
    q, k, v = torch.randn(3, 2, 1, 6, 8).unbind(0)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()[None, None]
    a = FullAttention(0.3, 0.0)(q, k, v, Layout(causal=True))
    b = FullAttention(0.3, 0.0)(q, k, v, Layout(mask=causal))
    torch.testing.assert_close(a, b)


def test_padding_does_not_change_real_tokens():
    model = build_model(tiny()).eval()
    ids = torch.randint(0, 50, (1, 7))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 7 + [0] * 3])
    with torch.no_grad():
        alone = model(ids).hidden
        batch = model(padded, mask).hidden
    torch.testing.assert_close(batch[:, :7], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("position", ["learned", "rotary", "alibi"])
def test_packed_documents_attend_only_within_document(position):
    model = build_model(decoder(position=position)).eval()
    a, b = torch.randint(0, 50, (1, 5)), torch.randint(0, 50, (1, 4))
    packed = torch.cat([a, b], 1)
    docs = torch.tensor([[0] * 5 + [1] * 4])
    positions = torch.tensor([list(range(5)) + list(range(4))])
    layout = Layout(causal=True, doc_ids=docs)
    with torch.no_grad():
        together = model(packed, layout=layout, positions=positions).logits["lm"]
        first, second = model(a).logits["lm"], model(b).logits["lm"]
    torch.testing.assert_close(together, torch.cat([first, second], 1), atol=1e-5, rtol=0)


def test_prefix_layout_is_bidirectional_inside_prefix_only():
    layout = Layout(causal=True, prefix_len=torch.tensor([3]))
    m = layout.dense(6, 6, torch.device("cpu"))[0, 0]
    assert m[:3, :3].all()  # prefix sees the whole prefix
    assert not m[:3, 3:].any()  # ...but no target token
    assert m[3:, :3].all() and torch.equal(m[3:, 3:], torch.ones(3, 3, dtype=torch.bool).tril())


def test_kernel_refuses_layouts_it_cannot_honour_at_build_time():
    @register("attention", "test-padding-only")
    class PaddingOnly(Kernel):
        name = "test-padding-only"
        supports = frozenset({"padding"})

    build_model(tiny(attention="test-padding-only"))  # an encoder only needs padding
    with pytest.raises(ConfigError, match="cannot honour causal"):
        build_model(decoder(attention="test-padding-only"))


@pytest.mark.parametrize("kw", [
    dict(position="learned"),
    dict(position="sinusoidal"),
    dict(position="rotary", num_kv_heads=2, norm="rmsnorm", feedforward="glu", activation="silu", bias=False),
    dict(position="alibi"),
    dict(position="t5", num_kv_heads=1),
])
def test_cache_on_equals_cache_off(kw):
    model = build_model(decoder(**kw)).eval()
    ids = torch.randint(0, 50, (2, 11))
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, :3] = 0  # left padding in row 1
    with torch.no_grad():
        full = model(ids, mask).logits["lm"]
        cache = model.new_cache()
        chunks = [model.step(ids[:, :4], cache, mask[:, :4])[0]]
        for t in range(4, 11):
            chunks.append(model.step(ids[:, t : t + 1], cache, mask[:, : t + 1])[0])
    stepped = torch.cat(chunks, 1)
    keep = mask.bool()
    torch.testing.assert_close(stepped[keep], full[keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("position", ["learned", "t5"])
def test_encoder_decoder_cache_on_equals_cache_off(position):
    model = build_model(tiny(arch="encoder-decoder", heads=["lm"], position=position, prenorm=True,
                             type_vocab_size=0, decoder_layers=3)).eval()
    src = torch.randint(0, 50, (2, 7))
    src_mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    tgt = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        full = model(src, src_mask, decoder_input_ids=tgt).logits["lm"]
        memory = model(src, src_mask).memory
        cache = model.new_cache()
        steps = [model.step(tgt[:, t : t + 1], cache, memory=memory, memory_mask=src_mask)[0] for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    # the encoder never sees padding: changing a padded source token changes nothing
    src2 = src.clone()
    src2[1, 6] = (src2[1, 6] + 1) % 50
    with torch.no_grad():
        again = model(src2, src_mask, decoder_input_ids=tgt).logits["lm"]
    torch.testing.assert_close(again, full)


def test_position_schemes():
    slopes = alibi_slopes(8)
    torch.testing.assert_close(slopes, torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert len(alibi_slopes(12)) == 12
    bias = T5Bias(tiny(relative_buckets=32, relative_max_distance=128), bidirectional=True)
    rel = torch.arange(-200, 201)
    buckets = bias.bucket(rel)
    assert buckets.min() >= 0 and buckets.max() < 32
    assert torch.all(buckets[rel > 0][1:] >= buckets[rel > 0][:-1])  # monotone in distance
    assert bias.bucket(torch.tensor([0])).item() == 0 and bias.bucket(torch.tensor([1])).item() == 17


def test_rmsnorm_and_glu_shapes():
    model = build_model(decoder(norm="rmsnorm", feedforward="glu", activation="silu"))
    block = model.body.layers[0]
    assert block.ffn.up.weight.shape == (2 * 48, 32)
    x = torch.randn(3, 32)
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()
    torch.testing.assert_close(block.attn_norm(x), expected)


def test_cross_layer_sharing_reuses_one_block():
    shared = build_model(tiny(share_layers=True, layers=6))
    separate = build_model(tiny(layers=6))
    per_block = sum(p.numel() for p in separate.body.layers[0].parameters())
    assert separate.num_parameters() - shared.num_parameters() == 5 * per_block
    out = shared(torch.randint(0, 50, (2, 5))).logits["mlm"].sum()
    out.backward()
    assert shared.body.layers[0].attn.qkv.weight.grad is not None


def test_fresh_adapters_are_the_identity_and_train():
    plain = build_model(tiny())
    with_adapters = build_model(tiny(adapter_size=8))
    missing = set(with_adapters.state_dict()) - set(plain.state_dict())
    assert missing and all("adapter" in k for k in missing)
    with_adapters.load_state_dict(plain.state_dict(), strict=False)
    ids = torch.randint(0, 50, (2, 6))
    plain.eval(), with_adapters.eval()
    torch.testing.assert_close(with_adapters(ids).hidden, plain(ids).hidden)
    with_adapters(ids).logits["mlm"].sum().backward()
    assert with_adapters.body.layers[0].ffn_adapter.up.weight.grad.abs().sum() > 0
