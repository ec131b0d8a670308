"""Reformer's LSH attention (Kitaev et al., 2020).

* Shared query-key: the keys are the queries, normalised to unit length (the
  layer's own key projection is not used and gets no gradient).
* Angular LSH: per round, random rotations R (D × n/2) and bucket argmax[xR; −xR].
* Per round the tokens are sorted by (bucket, position) and cut into chunks;
  each chunk attends to itself and the chunk before it.
* A token may attend to itself only when nothing else is visible (its score is
  replaced by −1e5, as in the paper).
* Rounds are combined with the weights of their log-sum-exps, so each round's
  softmax is renormalised over the union of what the rounds saw.
* Causal masking compares original positions; key padding is honoured.
* Rotations come from a generator seeded by (seed, layer, draw): fixed in eval,
  a new draw per forward pass in training, reproducible either way.

Memory is O(rounds · T · chunk); above 128 buckets a round hashes with two
rotations whose bucket ids multiply (O(T·√n) for the hash). One bucket, one round and a chunk ≥ T is
exactly softmax attention under the shared-QK rule. Chunks depend on the whole
sequence, so decoding with a KV cache is refused (cache on could not equal cache
off); a causal LSH model trains and scores, but does not generate token by token."""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn.attention.kernel import AttentionMap, Kernel
from sesame.nn.attention.linear import NO_DENSE
from sesame.nn.layout import Layout
from sesame.nn.reversible import recomputing

SELF_SCORE = -1e5


@dataclasses.dataclass
class LSHOptions(Section):
    """``buckets``: per round, 1 or even (0: about 2·T / chunk, a multiple of 64 above
    128, hashed as two factors); ``rounds``: hash
    rounds; ``chunk``: tokens per chunk; ``seed``: of the rotations."""

    buckets: int = 0
    rounds: int = 2
    chunk: int = 64
    seed: int = 0

    def validate(self) -> None:
        if self.buckets < 0 or (self.buckets > 1 and self.buckets % 2):
            raise ConfigError(f"model.attention_options.buckets must be 0 (auto), 1 or even, got {self.buckets}")
        if self.rounds <= 0 or self.chunk <= 0:
            raise ConfigError("model.attention_options: lsh needs rounds > 0 and chunk > 0")


def factors(n: int) -> list[int]:
    """n buckets as [n] or as two even factors near √n (when n > 128 allows it)."""
    if n <= 128:
        return [n]
    pairs = [(f, n // f) for f in range(2, int(n ** 0.5) + 1, 2) if n % f == 0 and (n // f) % 2 == 0]
    return list(pairs[-1]) if pairs else [n]


@register("attention", "lsh")
class LSHAttention(Kernel):
    name = "lsh"
    supports = frozenset({"causal", "padding"})
    reasons = dict(NO_DENSE, cross="shared query-key hashing needs keys from the same sequence")
    Options = LSHOptions

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        super().__init__(scale, dropout, config, layer)
        self.calls = 0

    def buckets(self, t: int) -> int:
        if self.opts.buckets:
            return self.opts.buckets
        if t <= self.opts.chunk:
            return 1
        n = 2 * math.ceil(t / self.opts.chunk)  # about two chunks per bucket
        return n if n <= 128 else 64 * math.ceil(n / 64)  # a multiple of 64 factors near √n

    def hash(self, q: torch.Tensor, n: int) -> torch.Tensor:
        """(B, H, R, T) bucket ids. Many buckets are hashed as a product of two angular
        hashes (as Reformer does), so hashing costs O(T·√n), not O(T·n)."""
        b, h, t, d = q.shape
        r = self.opts.rounds
        codes = torch.zeros(b, h, r, t, dtype=torch.long, device=q.device)
        if n == 1:
            return codes
        if self.training:
            draw = self.calls - 1 if recomputing() else self.calls  # a replay hashes as its forward did
        else:
            draw = 0
        gen = torch.Generator().manual_seed(self.opts.seed * 1_000_003 + self.layer * 10_007 + draw)
        scale = 1
        for f in factors(n):
            rot = torch.randn(d, r, f // 2, generator=gen).to(q.device)
            proj = torch.einsum("bhtd,drk->bhrtk", q.float(), rot)
            hi, lo = proj.max(-1), proj.min(-1)  # argmax over [xR; -xR] without building it
            codes = codes + scale * torch.where(hi.values >= -lo.values, hi.indices, lo.indices + f // 2)
            scale *= f
        return codes

    def _attend(self, q, v, layout: Layout, want_map: bool = False):
        self.require(layout)
        if q.shape[2] != v.shape[2] or layout.q_offset:
            raise ConfigError("lsh attention cannot decode with a KV cache: its chunks depend on the whole "
                              "sequence, so cache on could not equal cache off; re-encode the sequence instead")
        if v.shape[1] != q.shape[1]:
            v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
        b, h, t, d = q.shape
        r = self.opts.rounds
        codes = self.hash(q, self.buckets(t))
        if self.training and not recomputing():
            self.calls += 1
        pos = torch.arange(t, device=q.device)
        order = (codes * t + pos).argsort(-1)  # (B, H, R, T): sorted by bucket, then position
        c = min(self.opts.chunk, t)
        pad = (-t) % c
        n = (t + pad) // c
        order_p = F.pad(order, (0, pad))
        slot_ok = (torch.arange(t + pad, device=q.device) < t).expand(b, h, r, t + pad)
        key_ok = slot_ok
        if layout.key_padding is not None:
            real = layout.key_padding.bool()[:, None, None, :].expand(b, h, r, t)
            key_ok = slot_ok & real.gather(3, order_p)

        def gather(x):  # (B, H, T, D) -> (B, H, R, n, c, D) in sorted order
            idx = order_p[..., None].expand(b, h, r, t + pad, x.shape[-1])
            return x[:, :, None].expand(b, h, r, t, x.shape[-1]).gather(3, idx).view(b, h, r, n, c, x.shape[-1])

        qs, vs = gather(q), gather(v)
        ks = F.normalize(qs.float(), dim=-1).to(qs.dtype)
        qpos, kpos, kok = order_p.view(b, h, r, n, c), order_p.view(b, h, r, n, c), key_ok.view(b, h, r, n, c)
        if n > 1:  # each chunk also sees the one before it
            before = lambda x: torch.cat([x.roll(1, dims=3), x], dim=4)  # noqa: E731
            ks, vs, kpos, kok = before(ks), before(vs), before(kpos), before(kok)
        scores = (qs @ ks.transpose(-1, -2)).float() * self.scale  # (B, H, R, n, c, c or 2c)
        mask = kok[..., None, :].expand_as(scores)
        if layout.causal:
            mask = mask & (kpos[..., None, :] <= qpos[..., :, None])
        scores = scores.masked_fill(kpos[..., None, :] == qpos[..., :, None], SELF_SCORE)
        scores = scores.masked_fill(~mask, torch.finfo(torch.float32).min)
        seen = mask.any(-1)
        lse = torch.logsumexp(scores, -1)
        probs = torch.exp(scores - lse[..., None]) * seen[..., None]
        lse = lse.masked_fill(~seen, torch.finfo(torch.float32).min)
        if self.training and self.dropout:
            probs = F.dropout(probs, self.dropout)
        out = (probs.to(vs.dtype) @ vs).view(b, h, r, t + pad, d)[:, :, :, :t]
        lse = lse.view(b, h, r, t + pad)[..., :t]
        idx = order[..., None].expand(b, h, r, t, d)
        out = torch.zeros_like(out).scatter(3, idx, out)  # back to original order
        lse = torch.zeros_like(lse).scatter(3, order, lse)
        weight = torch.softmax(lse, dim=2)  # rounds, by their log-sum-exps
        result = (weight[..., None].to(out.dtype) * out).sum(2)
        if not want_map:
            return result, None
        # the effective map: every round's probabilities, weighted, scattered to (query, key)
        w_sorted = weight.gather(3, order_p).view(b, h, r, n, c)
        contrib = probs * (w_sorted * slot_ok.reshape(b, h, r, n, c))[..., None]
        flat = (qpos[..., :, None] * t + kpos[..., None, :]).expand_as(contrib)
        dense = torch.zeros(b, h, t * t, device=q.device)
        dense.scatter_add_(2, flat.reshape(b, h, -1), contrib.reshape(b, h, -1).float())
        return result, dense.view(b, h, t, t)

    def forward(self, q, k, v, layout: Layout, bias=None):
        if bias is not None:
            self.check({"bias"})
        return self._attend(q, v, layout)[0]

    def attend_with_map(self, q, k, v, layout, bias=None, **_):
        out, probs = self._attend(q, v, layout, want_map=True)
        return out, AttentionMap(probs.to(q.dtype), None)
