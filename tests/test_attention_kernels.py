"""Efficient attention kernels: exact limits, padding and fully masked rows, the
blocked paths against their dense maps, cache on = cache off, gradients, bf16,
config errors, and a tiny pre-training run per kernel."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from sesame.config import ModelConfig, load_config
from sesame.config.registry import get
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.nn import Layout
from sesame.nn.attention.performer import gaussian_features, softmax_features
from sesame.nn.cache import LayerCache

B, H, T, D = 2, 4, 13, 8
SCALE = 1 / math.sqrt(D)
KERNELS = ["linear", "performer", "linformer", "longformer", "lsh"]
CAUSAL = ["linear", "performer", "longformer", "lsh"]
SMALL_OPTS = {"linear": {"chunk": 4}, "performer": {"features": 32, "chunk": 4}, "linformer": {"k": 8},
              "longformer": {"window": 4}, "lsh": {"chunk": 4, "buckets": 4}}


def config(attention, opts=None, **kw):
    base = dict(vocab_size=50, hidden=32, layers=2, num_heads=H, intermediate=48, max_positions=32,
                dropout=0.0, attention_dropout=0.0, attention=attention,
                attention_options=SMALL_OPTS.get(attention, {}) if opts is None else opts)
    base.update(kw)
    return ModelConfig(**base)


def decoder(attention, opts=None, **kw):
    return config(attention, opts, arch="decoder", heads=["lm"], prenorm=True, embedding_norm=False,
                  type_vocab_size=0, **kw)


def kernel(name, opts=None, **kw):
    return get("attention", name)(SCALE, 0.0, config(name, opts, **kw), 0).eval()


def qkv(seed=0, t=T):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, t, D, generator=g) for _ in range(3))


PADDING = torch.ones(B, T, dtype=torch.bool)
PADDING[1, 9:] = False


def full(q, k, v, layout):
    return get("attention", "full")(SCALE, 0.0)(q, k, v, layout)


def real(x):
    """(B, H, T, ...) kernel outputs at real (unpadded) query positions."""
    return x.transpose(1, 2)[PADDING]


def close(a, b, tol=1e-5):
    assert (a - b).abs().max().item() <= tol, f"max abs diff {(a - b).abs().max().item():.2e} > {tol}"


# ---- exact limits ---------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_longformer_with_window_over_length_is_full_attention(causal):
    q, k, v = qkv()
    layout = Layout(causal=causal, key_padding=PADDING)
    out = kernel("longformer", {"window": 2 * T})(q, k, v, layout)
    close(real(out), real(full(q, k, v, layout)))


def test_lsh_with_one_bucket_is_full_attention_under_shared_qk():
    q, _, v = qkv()
    keys = F.normalize(q, dim=-1)
    for causal in (False, True):
        layout = Layout(causal=causal, key_padding=PADDING)
        out = kernel("lsh", {"buckets": 1, "rounds": 1, "chunk": 64})(q, None, v, layout)
        # the shared-QK rule: keys are the unit queries; a token sees itself only when nothing else is visible
        scores = (q @ keys.transpose(-1, -2)) * SCALE
        mask = layout.dense(T, T, q.device).expand(B, H, T, T).clone()
        eye = torch.eye(T, dtype=torch.bool)
        alone = (mask & ~eye).sum(-1, keepdim=True) == 0
        mask = mask & (~eye | alone)
        ref = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0) @ v
        close(real(out), real(ref))


def test_linformer_with_k_equal_length_and_identity_projections_is_full_attention():
    q, k, v = qkv()
    ker = kernel("linformer", {"k": T, "max_length": T})
    with torch.no_grad():
        ker.E.copy_(torch.eye(T)[None])
        ker.F.copy_(torch.eye(T)[None])
    close(ker(q, k, v, Layout()), full(q, k, v, Layout()))


def test_linformer_sharing_levels_and_a_layerwise_checkpoint_round_trip(tmp_path):
    from sesame.compress.surgery import keep_layers
    from sesame.models.io import load_model, save_model
    from sesame.train.checkpoint import load_model_state, model_state

    def counts(share):
        model = build_model(config("linformer", {"k": 8, "share": share}, layers=3, num_kv_heads=2))
        kernels = [blk.attn.kernel for blk in model.body.layers]
        return model, kernels, sum(p.numel() for ker in kernels for p in ker.parameters())

    pair = 8 * 32  # one k × max_length matrix
    assert [counts(s)[2] for s in ("none", "heads", "kv", "layers")] == [3 * 2 * 2 * pair, 3 * 2 * pair,
                                                                         3 * pair, pair]
    model, kernels, _ = counts("layers")
    assert all(ker.projections()[0] is kernels[0].E and ker.projections()[1] is kernels[0].E for ker in kernels)
    assert [k for k, _ in model.named_parameters() if "kernel" in k] == ["body.layers.0.attn.kernel.E"]
    with torch.no_grad():
        kernels[0].E.normal_()
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        want = model.eval()(ids).hidden
        again = load_model(save_model(model, tmp_path / "m"))[0]  # model.safetensors stores it once
        close(again.eval()(ids).hidden, want, 0.0)
        tensors, aliases = model_state(model)  # a training checkpoint's state
        fresh = build_model(model.config).eval()
        load_model_state(fresh, tensors, aliases)
        close(fresh(ids).hidden, want, 0.0)
    assert fresh.body.layers[2].attn.kernel.projections()[1] is fresh.body.layers[0].attn.kernel.E
    kept = keep_layers(model, [2, 1])  # layer 0 dropped: the shared matrix stays at the new layer 0
    assert torch.equal(kept.body.layers[1].attn.kernel.projections()[0], kernels[0].E)
    with pytest.raises(ConfigError, match="share = 'headwise' is not one of 'none', 'heads', 'kv', 'layers'"):
        build_model(config("linformer", {"share": "headwise"}))


def test_performer_estimates_the_softmax_kernel_without_bias():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 6, 8, generator=g) * 0.4
    exact = torch.exp((x * y).sum(-1))
    for orthogonal in (True, False):
        est = torch.stack([
            (softmax_features(x, w) * softmax_features(y, w)).sum(-1)
            for w in (gaussian_features(16, 8, g, orthogonal) for _ in range(1500))
        ])
        se = est.std(0) / math.sqrt(est.shape[0])
        assert ((est.mean(0) - exact).abs() < 4 * se).all(), (est.mean(0), exact, se)
    # more features, smaller error of the attention output against exact softmax attention
    q, k, v = qkv()
    ref = full(q, k, v, Layout())
    errs = [(kernel("performer", {"features": m})(q, k, v, Layout()) - ref).abs().mean() for m in (8, 512)]
    assert errs[1] < errs[0] / 2


def test_performer_redraws_on_schedule_in_training_and_is_fixed_in_eval():
    ker = kernel("performer", {"features": 16, "redraw_every": 2})
    q, k, v = qkv()
    start = ker.omega.clone()
    ker(q, k, v, Layout()), ker(q, k, v, Layout())
    assert torch.equal(ker.omega, start)
    ker.train()
    seen = []
    for _ in range(5):
        ker(q, k, v, Layout())
        seen.append(ker.omega.clone())
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])
    again = kernel("performer", {"features": 16, "redraw_every": 2}).train()
    for _ in range(5):
        again(q, k, v, Layout())
    assert torch.equal(again.omega, seen[-1])  # draws are seeded: reproducible


# ---- blocked paths agree with their dense maps ------------------------------
CASES = [
    ("linear", {"chunk": 4}, False), ("linear", {"chunk": 4, "feature_map": "relu"}, True),
    ("performer", {"features": 32, "chunk": 5}, True), ("performer", {"features": 32}, False),
    ("linformer", {"k": 6}, False),
    ("longformer", {"window": 4}, False), ("longformer", {"window": 6}, True),
    ("longformer", {"window": 4, "dilation": [1, 2, 1, 3]}, False),
    ("longformer", {"window": 4, "dilation": [2, 1, 3, 1]}, True),
    ("lsh", {"chunk": 4, "buckets": 4, "rounds": 3}, False), ("lsh", {"chunk": 3, "rounds": 2}, True),
]


@pytest.mark.parametrize("name,opts,causal", CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)])
def test_kernel_output_is_its_effective_map_times_values(name, opts, causal):
    q, k, v = qkv(1)
    ker = kernel(name, opts)
    layout = Layout(causal=causal, key_padding=PADDING)
    out = ker(q, k, v, layout)
    mapped, amap = ker.attend_with_map(q, k, v, layout)
    close(real(out), real(mapped))
    close(real((amap.probs @ v)), real(out))
    assert not amap.probs[~PADDING[:, None, None, :].expand_as(amap.probs)].any()  # padded keys unseen
    if causal:
        assert not amap.probs.triu(1).any()
    if name != "linformer":  # Linformer's effective map P·F need not be a distribution
        sums = real(amap.probs.sum(-1)[..., None])
        if opts.get("feature_map") == "relu":  # φ(q)·φ(k) = 0 on every visible key: nothing seen, a zero row
            sums = torch.where(sums < 0.5, 1.0 - sums, sums)
        close(sums, torch.ones_like(sums))


@pytest.mark.parametrize("causal", [False, True])
def test_longformer_global_tokens_blocked_equals_dense(causal):
    q, k, v = qkv(2)
    x = torch.randn(B, T, 32)
    glob = torch.zeros(B, T, dtype=torch.bool)
    glob[0, [0, 5]] = True
    glob[1, 3] = True
    ker = kernel("longformer", {"window": 4, "global_positions": [0], "dilation": [1, 2, 1, 1]})
    layout = Layout(causal=causal, key_padding=PADDING, global_mask=glob)
    out = ker(q, k, v, layout, x=x)
    mapped, amap = ker.attend_with_map(q, k, v, layout, x=x)
    close(real(out), real(mapped))
    assert amap.probs[0, :, 12, 5].gt(0).all() and amap.probs[0, :, 12, 0].gt(0).all()  # far tokens see globals
    assert amap.probs[0, :, 5].gt(0).sum(-1).min() >= (6 if causal else T)  # the global token sees everything


def test_longformer_packed_documents_stay_inside_their_document():
    q, k, v = qkv(4)
    docs = torch.tensor([[0] * 6 + [1] * 7, [0] * 9 + [1] * 4])
    ker = kernel("longformer", {"window": 4, "dilation": [1, 2, 1, 1]})
    for causal in (False, True):
        layout = Layout(causal=causal, doc_ids=docs)
        out = ker(q, k, v, layout)
        close(out, ker.attend_with_map(q, k, v, layout)[0])
        first = ker(q[:1, :, :6], k[:1, :, :6], v[:1, :, :6], Layout(causal=causal))
        close(out[:1, :, :6], first)
        second = ker(q[:1, :, 6:], k[:1, :, 6:], v[:1, :, 6:], Layout(causal=causal))
        close(out[:1, :, 6:], second)


@pytest.mark.parametrize("name", ["linear", "performer"])
def test_linear_kernels_packed_documents_equal_each_document_alone(name):
    """Ten chunks of 3 (every doubling step of the segmented scan), documents that
    cross several chunks, end on a chunk boundary or inside one, and padding."""
    t = 29
    q, k, v = qkv(5, t)
    docs = torch.tensor([[0] * 2 + [1] * 17 + [2] * 3 + [3] * 7, [0] * 12 + [1] + [2] * 14 + [-1] * 2])
    padding = docs >= 0
    ker = kernel(name, {"chunk": 3, **({"features": 32} if name == "performer" else {})})
    for causal in (False, True):
        out = ker(q, k, v, Layout(causal=causal, doc_ids=docs, key_padding=padding))
        close(out.transpose(1, 2)[padding], ker.attend_with_map(
            q, k, v, Layout(causal=causal, doc_ids=docs, key_padding=padding))[0].transpose(1, 2)[padding])
        for row in range(B):
            for d in docs[row].unique().tolist():
                if d < 0:
                    continue
                at = (docs[row] == d).nonzero()[:, 0]
                part = slice(int(at[0]), int(at[-1]) + 1)
                alone = ker(q[row:row + 1, :, part], k[row:row + 1, :, part], v[row:row + 1, :, part],
                            Layout(causal=causal))
                close(out[row:row + 1, :, part], alone)
    model = build_model(decoder(name, position="rotary"), needed={"causal", "documents"}).eval()
    ids, docs = torch.randint(0, 50, (1, 11)), torch.tensor([[0] * 7 + [1] * 4])
    positions = torch.tensor([list(range(7)) + list(range(4))])
    with torch.no_grad():  # a packed clm decoder: each document as if alone
        packed = model(ids, layout=Layout(causal=True, doc_ids=docs), positions=positions).logits["lm"]
        close(packed[:, :7], model(ids[:, :7]).logits["lm"])
        close(packed[:, 7:], model(ids[:, 7:]).logits["lm"])
    with pytest.raises(ConfigError, match="cannot decode packed documents"):
        model.body.layers[0].attn.kernel.step(q, k, v, Layout(causal=True, doc_ids=docs), LayerCache())
    with pytest.raises(ConfigError, match="cannot honour documents .its buckets or projections"):
        build_model(config("lsh", arch="decoder", heads=["lm"]), needed={"causal", "documents"})


# ---- padding and fully masked rows -------------------------------------------
@pytest.mark.parametrize("name", KERNELS)
def test_fully_masked_rows_are_zeros_and_gradients_finite(name):
    q, k, v = (t.requires_grad_() for t in qkv(3))
    padding = PADDING.clone()
    padding[1] = False
    for causal in ([False, True] if name in CAUSAL else [False]):
        out = kernel(name)(q, k, v, Layout(causal=causal, key_padding=padding))
        assert torch.isfinite(out).all() and out[1].abs().max() == 0
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, v))


@pytest.mark.parametrize("name", ["linear", "performer", "linformer", "longformer"])
def test_right_padding_does_not_change_real_tokens(name):
    model = build_model(config(name)).eval()
    ids = torch.randint(0, 50, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    with torch.no_grad():
        alone = model(ids).hidden
        batch = model(padded, torch.tensor([[1] * 9 + [0] * 4])).hidden
    close(batch[:, :9], alone)


# ---- cache on = cache off ----------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "performer", "longformer"])
def test_cache_on_equals_cache_off(name):
    opts = dict(SMALL_OPTS[name], **({"dilation": [1, 2, 1, 2]} if name == "longformer" else {}))
    model = build_model(decoder(name, opts, position="rotary", num_kv_heads=2)).eval()
    ids = torch.randint(0, 50, (2, 11))
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, :3] = 0
    with torch.no_grad():
        whole = model(ids, mask).logits["lm"]
        cache = model.new_cache()
        chunks = [model.step(ids[:, :4], cache, mask[:, :4])[0]]
        for t in range(4, 11):
            chunks.append(model.step(ids[:, t:t + 1], cache, mask[:, :t + 1])[0])
    keep = mask.bool()
    close(torch.cat(chunks, 1)[keep], whole[keep])
    if name != "longformer":  # the recurrent state is O(1): no keys are kept
        layer = cache.layers[0]
        assert layer.k is None and layer.state["S"].shape == (2, 4, layer.state["S"].shape[2], 8)
        reordered = LayerCache()
        reordered.state = dict(layer.state)
        reordered.reorder(torch.tensor([1, 0]))
        assert torch.equal(reordered.state["S"][0], layer.state["S"][1])


@pytest.mark.parametrize("name", ["linear", "performer"])
def test_encoder_decoder_cache_on_equals_cache_off(name):
    model = build_model(config(name, arch="encoder-decoder", heads=["lm"], prenorm=True, type_vocab_size=0)).eval()
    src, src_mask = torch.randint(0, 50, (2, 7)), torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    tgt = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        whole = model(src, src_mask, decoder_input_ids=tgt).logits["lm"]
        memory = model(src, src_mask).memory
        cache = model.new_cache()
        steps = [model.step(tgt[:, t:t + 1], cache, memory=memory, memory_mask=src_mask)[0] for t in range(6)]
    close(torch.cat(steps, 1), whole)


def test_lsh_refuses_to_decode_with_a_cache():
    model = build_model(decoder("lsh")).eval()
    cache = model.new_cache()
    model.step(torch.randint(0, 50, (1, 4)), cache)
    with pytest.raises(ConfigError, match="cannot decode with a KV cache"):
        model.step(torch.randint(0, 50, (1, 1)), cache)


# ---- gradients, bf16, config ---------------------------------------------------
@pytest.mark.parametrize("name", KERNELS)
def test_gradients_flow_and_bf16_autocast(name):
    model = build_model(config(name))
    ids = torch.randint(0, 50, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 10:] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, mask).logits["mlm"]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    out.float().sum().backward()
    grad = model.body.layers[0].attn.qkv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad[:32].abs().sum() > 0  # query rows
    if name == "linformer":  # the learned projections train too
        assert model.body.layers[1].attn.kernel.E.grad.abs().sum() > 0


def test_options_are_strict_and_refusals_are_clear():
    with pytest.raises(ConfigError, match="did you mean `window`"):
        build_model(config("longformer", {"windw": 4}))
    with pytest.raises(ConfigError, match="cannot honour causal .Linformer projects"):
        build_model(decoder("linformer"))
    with pytest.raises(ConfigError, match="takes no options"):
        build_model(config("full", {"k": 4}))
    with pytest.raises(ConfigError, match="positive even"):
        build_model(config("longformer", {"window": 3}))
    with pytest.raises(ConfigError, match="one per layer"):
        build_model(config("longformer", {"window": [4, 4, 4]}))
    with pytest.raises(ConfigError, match="feature_map"):
        build_model(config("linear", {"feature_map": "tanh"}))
    with pytest.raises(ConfigError, match="cannot honour cross"):
        build_model(config("longformer", arch="encoder-decoder", heads=["lm"]))
    per_layer = build_model(config("longformer", {"window": [2, 8]}))
    assert [blk.attn.kernel.w for blk in per_layer.body.layers] == [1, 4]
    run = load_config("test-encoder", ["model.attention=longformer", "model.attention_options.window=8"])
    assert run.model.attention == "longformer" and run.model.attention_options == {"window": 8}


@pytest.mark.parametrize("name", KERNELS)
def test_tiny_pretrain_lowers_the_loss(name, tmp_path):
    from sesame.pretrain import pretrain

    text = tmp_path / "tiny.txt"
    text.write_text("\n\n".join(f"the {a} sat on the {b} and the {b} held the {a}."
                                for a in ("cat", "dog", "bird", "fish") for b in ("mat", "box", "bed")) * 6)
    opts = {"linformer": "{k = 16}", "longformer": "{window = 8}", "lsh": "{chunk = 8}"}.get(name, "{}")
    run = load_config("test-encoder", [
        f"data.inputs=[{str(text)!r}]", "data.seq_len=32", "tokenizer.vocab_size=80", "tokenizer.min_frequency=1",
        "train.steps=10", "train.batch_size=8", "train.lr=3e-3", "train.warmup=1", "train.log_every=1",
        "train.save_every=10", "train.eval_every=0", "model.max_positions=32", "model.layers=1",
        f"model.attention={name}", f"model.attention_options={opts}",
    ])
    pretrain(run, tmp_path / "run", progress=False, say=lambda s: None)
    losses = [x["loss"] for x in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
              if "loss" in x and x.get("event") != "eval"]
    assert len(losses) >= 5 and sum(losses[-3:]) / 3 < losses[0] - 0.3, losses


# ---- reversible layers and chunked feed-forward ----------------------------------
@pytest.mark.parametrize("name", ["full", "lsh", "performer"])
def test_reversible_gradients_equal_plain_autograd(name):
    from sesame.nn.reversible import reversible_stack

    opts = {"full": {}, "lsh": {"chunk": 4, "buckets": 4}, "performer": {"features": 16, "redraw_every": 1}}[name]
    model = build_model(config(name, opts, prenorm=True, reversible=True, ff_chunks=3, dropout=0.1, layers=3,
                               init_std=0.3))  # large weights: peaked attention, so the kernel matters
    model.train()
    ids = torch.randint(0, 50, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0

    def loss():
        return model(ids, mask).logits["mlm"].float().pow(2).mean()

    torch.manual_seed(5)
    loss().backward()
    rev = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    for blk in model.body.layers:  # replay the same kernel draws (no redraw happened on the first call)
        if hasattr(blk.attn.kernel, "calls"):
            blk.attn.kernel.calls -= 1
    stack = model.body.layers
    stack.reversible = False  # the same two-stream function, through plain autograd
    original = type(stack).forward
    type(stack).forward = lambda self, x, ctx, cache=None, hs=None: reversible_stack(self, x, ctx, cache, [])
    try:
        torch.manual_seed(5)
        loss().backward()
    finally:
        type(stack).forward = original
    plain = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert rev.keys() == plain.keys() and len(rev) > 10
    for key in rev:
        close(rev[key], plain[key], 1e-5)


def test_reversible_and_chunked_ffn_configs():
    with pytest.raises(ConfigError, match="prenorm"):
        config("full", reversible=True).validate()
    plain = build_model(config("full", prenorm=True)).eval()
    chunked = build_model(config("full", prenorm=True, ff_chunks=4)).eval()
    chunked.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 50, (2, 10))
    close(chunked(ids).hidden, plain(ids).hidden)
    rev = build_model(decoder("linear", reversible=True)).eval()  # decoding runs the same two streams
    ids = torch.randint(0, 50, (1, 7))
    with torch.no_grad():
        whole = rev(ids).logits["lm"]
        cache = rev.new_cache()
        steps = [rev.step(ids[:, :3], cache)[0]] + [rev.step(ids[:, t:t + 1], cache)[0] for t in range(3, 7)]
    close(torch.cat(steps, 1), whole)


def test_reversible_activation_memory_does_not_grow_with_depth():
    def saved_bytes(layers, reversible):
        model = build_model(config("full", prenorm=True, layers=layers, reversible=reversible)).train()
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randint(0, 50, (2, 16))).logits["mlm"].sum()
        return total[0]

    assert saved_bytes(4, True) == saved_bytes(2, True)
    assert saved_bytes(4, False) > saved_bytes(2, False) + 10_000
