"""Kernelised linear attention (Katharopoulos et al., 2020).

softmax(q kᵀ) is replaced by a feature map: out_i = φ(q_i)ᵀ S / φ(q_i)ᵀ z with
S = Σ_j φ(k_j) v_jᵀ and z = Σ_j φ(k_j), so cost and memory are linear in T.

* non-causal: φ(K)ᵀV first, then one product per query;
* causal: a chunked scan, exact C×C products inside each chunk of C tokens and
  prefix sums of the per-chunk states across chunks (no loop over tokens);
* decoding: the state (S, z) after the last token is all a new token needs, so
  the kernel is ``recurrent``: the cache carries (S, z), O(1) per token, and
  cache on equals cache off;
* packed documents (``Layout.doc_ids``, a document being a run of equal ids, as
  packing writes them): inside each chunk the C×C products are masked to the
  document, and the state a chunk inherits is a *segmented* scan over chunks,
  reset where a document begins (log₂(chunks) doubling steps, sized by shapes
  only: no host sync, no branch on values). The bidirectional form is the
  causal scan plus a strictly anticausal one (the same scan on the reversed
  sequence).

Feature maps are registered by name (``elu`` = elu + 1, the paper's default;
``relu``; ``softplus``) with ``@feature_map``. There is no probability matrix, so
``model.attention_dropout`` has nothing to act on and is not applied. The map
returned by ``attend_with_map`` is the effective one, φ(q_i)·φ(k_j) normalised
over the visible keys. Sums run in float32 whatever the autocast dtype."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn.attention.kernel import AttentionMap, Kernel
from sesame.nn.layout import Layout

FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}


def feature_map(name: str):
    """Register a non-negative feature map φ under ``name``."""
    def deco(fn):
        FEATURE_MAPS[name] = fn
        return fn
    return deco


@feature_map("elu")
def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


@feature_map("relu")
def relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


@feature_map("softplus")
def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


# reasons shared by the kernels that never form T×T scores
NO_DENSE = {
    "documents": "its buckets or projections mix tokens of every packed document; for clm set "
                 "objective.options.within_documents = false",
    "prefix": "a prefix-LM mask is not a plain causal prefix sum",
    "explicit": "an explicit mask needs the T×T matrix this kernel never forms",
    "bias": "a score bias (T5 buckets, ALiBi) needs the T×T scores; use rotary or learned positions",
    "global": "global tokens are Longformer's (model.attention = 'longformer')",
}


def repeat_kv(q, k, v):
    """Grouped-query keys/values repeated to one per query head."""
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    return k, v


def key_keep(layout: Layout, tk: int) -> torch.Tensor | None:
    """(B, 1, Tk, 1) float, 1 at real keys (the last Tk columns of the padding mask)."""
    if layout.key_padding is None:
        return None
    return layout.key_padding[:, -tk:].to(torch.float32)[:, None, :, None]


def safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, with 0 where nothing was visible (den == 0), never NaN."""
    return num / den.masked_fill(den == 0, 1.0)


def noncausal(fq, fk, v):
    """Every query sees every key: φ(K)ᵀV (M × Dv) first."""
    kv = fk.transpose(-1, -2) @ v
    den = fq @ fk.sum(2)[..., None]
    return safe_divide(fq @ kv, den)


def _chunked(fq, fk, v, chunk: int):
    """T padded to a multiple of the chunk length c and viewed as n chunks:
    (fq, fk, v) as (B, H, n, c, ·), with t, n, c and the padding."""
    b, h, t, m = fq.shape
    c = max(1, min(chunk, t))
    pad = (-t) % c
    if pad:
        fq, fk, v = (F.pad(x, (0, 0, 0, pad)) for x in (fq, fk, v))
    n = (t + pad) // c
    return fq.view(b, h, n, c, m), fk.view(b, h, n, c, m), v.view(b, h, n, c, v.shape[-1]), t, n, c, pad


def causal_scan(fq, fk, v, chunk: int, state=None):
    """Causal linear attention over chunks of ``chunk`` tokens. ``state``: (S, z) of
    the tokens before these ones (decoding). Returns (out, (S, z) after the last token)."""
    b, h = fq.shape[:2]
    dv = v.shape[-1]
    fq, fk, v, t, n, c, _ = _chunked(fq, fk, v, chunk)
    tri = torch.ones(c, c, dtype=torch.bool, device=fq.device).tril()
    a = (fq @ fk.transpose(-1, -2)).masked_fill(~tri, 0.0)  # inside each chunk
    num, den = a @ v, a.sum(-1, keepdim=True)
    s, z = fk.transpose(-1, -2) @ v, fk.sum(3)  # per-chunk states (b, h, n, m, dv), (b, h, n, m)
    cs, cz = s.cumsum(2), z.cumsum(2)
    s_before = torch.cat([torch.zeros_like(cs[:, :, :1]), cs[:, :, :-1]], 2)
    z_before = torch.cat([torch.zeros_like(cz[:, :, :1]), cz[:, :, :-1]], 2)
    last_s, last_z = cs[:, :, -1], cz[:, :, -1]
    if state is not None:
        s_before, z_before = s_before + state[0][:, :, None], z_before + state[1][:, :, None]
        last_s, last_z = last_s + state[0], last_z + state[1]
    num = num + fq @ s_before
    den = den + fq @ z_before[..., None]
    out = safe_divide(num, den).reshape(b, h, n * c, dv)[:, :, :t]
    return out, (last_s, last_z)


def document_runs(doc_ids: torch.Tensor, t: int) -> torch.Tensor:
    """(B, t) run number of each of the last t tokens: it grows by one wherever the id changes."""
    d = doc_ids[:, -t:]
    change = torch.ones_like(d, dtype=torch.long)
    change[:, 1:] = (d[:, 1:] != d[:, :-1]).long()
    return change.cumsum(1)


def _shift(x: torch.Tensor, by: int, dim: int) -> torch.Tensor:
    """x moved ``by`` places later along ``dim``, zeros in front."""
    keep = x.narrow(dim, 0, x.shape[dim] - by)
    return torch.cat([torch.zeros_like(x.narrow(dim, 0, by)), keep], dim)


def document_scan(fq, fk, v, chunk: int, runs: torch.Tensor, strict: bool = False):
    """(num, den) of causal linear attention kept inside each run of ``runs`` (B, T);
    ``strict``: a query does not see its own key. Chunk c inherits X_{c-1}, where
    X_c = tail_c + keep_c · X_{c-1} (tail_c: the state of chunk c's last run inside
    it; keep_c: that run filled the whole chunk and began before it)."""
    b, h = fq.shape[:2]
    dv = v.shape[-1]
    fq, fk, v, t, n, c, pad = _chunked(fq, fk, v, chunk)
    runs = F.pad(runs, (0, pad), value=-1)
    r = runs.view(b, n, c)
    tri = torch.ones(c, c, dtype=torch.bool, device=fq.device).tril(-1 if strict else 0)
    visible = tri & (r[..., :, None] == r[..., None, :])  # (b, n, c, c)
    a = (fq @ fk.transpose(-1, -2)) * visible[:, None]
    num, den = a @ v, a.sum(-1, keepdim=True)
    last = r[..., -1]  # (b, n)
    prev = torch.cat([torch.full_like(last[:, :1], -2), last[:, :-1]], 1)
    tail = fk * (r == last[..., None])[:, None, :, :, None]
    xs, xz = tail.transpose(-1, -2) @ v, tail.sum(3)  # (b, h, n, m, dv), (b, h, n, m)
    keep = (last == prev).to(fq.dtype)[:, None]  # (b, 1, n)
    step = 1
    while step < n:  # Hillis-Steele over chunks: static trip count
        xs = xs + keep[..., None, None] * _shift(xs, step, 2)
        xz = xz + keep[..., None] * _shift(xz, step, 2)
        keep = keep * _shift(keep, step, 2)
        step *= 2
    use = (r == prev[..., None]).to(fq.dtype)[:, None, :, :, None]  # (b, 1, n, c, 1)
    num = num + use * (fq @ _shift(xs, 1, 2))
    den = den + use * (fq @ _shift(xz, 1, 2)[..., None])
    return num.reshape(b, h, n * c, dv)[:, :, :t], den.reshape(b, h, n * c, 1)[:, :, :t]


def document_attention(fq, fk, v, chunk: int, doc_ids: torch.Tensor, causal: bool):
    """Linear attention inside each packed document, causal or bidirectional."""
    runs = document_runs(doc_ids.to(fq.device), fq.shape[2])
    num, den = document_scan(fq, fk, v, chunk, runs)
    if not causal:  # + every later key of the document: the strict scan of the reversed sequence
        n2, d2 = document_scan(fq.flip(2), fk.flip(2), v.flip(2), chunk, runs.flip(1), strict=True)
        num, den = num + n2.flip(2), den + d2.flip(2)
    return safe_divide(num, den)


@dataclasses.dataclass
class LinearOptions(Section):
    """``feature_map``: a registered φ; ``chunk``: tokens per chunk of the causal scan."""

    feature_map: str = "elu"
    chunk: int = 64

    def validate(self) -> None:
        choice("model.attention_options.feature_map", self.feature_map, sorted(FEATURE_MAPS))
        if self.chunk <= 0:
            raise ConfigError(f"model.attention_options.chunk must be positive, got {self.chunk}")


@register("attention", "linear")
class LinearAttention(Kernel):
    name = "linear"
    supports = frozenset({"causal", "padding", "cross", "documents"})
    reasons = NO_DENSE
    Options = LinearOptions
    recurrent = True

    def featurize(self, q, k):
        phi = FEATURE_MAPS[self.opts.feature_map]
        return phi(q.float()), phi(k.float())

    def _prepare(self, q, k, v, layout, bias):
        self.require(layout)
        if bias is not None:
            self.check({"bias"})
        k, v = repeat_kv(q, k, v)
        fq, fk = self.featurize(q, k)
        keep = key_keep(layout, k.shape[2])
        if keep is not None:
            fk = fk * keep
        return fq, fk, v.float()

    def forward(self, q, k, v, layout: Layout, bias=None):
        fq, fk, vf = self._prepare(q, k, v, layout, bias)
        if (layout.causal or layout.doc_ids is not None) and q.shape[2] != k.shape[2]:
            raise ConfigError(f"causal or packed {self.name} attention needs as many queries as keys; "
                              "decoding goes through the cache (step)")
        if layout.doc_ids is not None:
            out = document_attention(fq, fk, vf, self.opts.chunk, layout.doc_ids, layout.causal)
        elif layout.causal:
            out, _ = causal_scan(fq, fk, vf, self.opts.chunk)
        else:
            out = noncausal(fq, fk, vf)
        return out.to(v.dtype)

    def step(self, q, k, v, layout: Layout, cache):
        """Decode new tokens from the cached state (S, z); O(1) memory per token."""
        if not layout.causal:
            raise ConfigError(f"{self.name} attention decodes with a cache only in a causal decoder")
        if layout.doc_ids is not None:
            raise ConfigError(f"{self.name} attention cannot decode packed documents with a cache (its "
                              "state is one running sum); generate one document per sequence")
        fq, fk, vf = self._prepare(q, k, v, layout, None)
        state = (cache.state["S"], cache.state["z"]) if cache.state else None
        out, (s, z) = causal_scan(fq, fk, vf, self.opts.chunk, state)
        cache.state = {"S": s, "z": z}
        cache.length += q.shape[2]
        return out.to(v.dtype)

    def attend_with_map(self, q, k, v, layout, bias=None, **_):
        """The effective map φ(q_i)·φ(k_j) over visible keys, normalised per row."""
        fq, fk, vf = self._prepare(q, k, v, layout, bias)
        a = fq @ fk.transpose(-1, -2)
        mask = layout.dense(q.shape[2], k.shape[2], q.device)
        if mask is not None:
            a = a.masked_fill(~mask, 0.0)
        probs = safe_divide(a, a.sum(-1, keepdim=True))
        return (probs @ vf).to(v.dtype), AttentionMap(probs.to(q.dtype), None)
