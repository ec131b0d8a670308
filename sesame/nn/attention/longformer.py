"""Longformer attention (Beltagy et al., 2020): a sliding window, optionally
dilated, plus global attention on chosen tokens.

* Window: each query sees ``window // 2`` keys on each side (the paper's and
  Hugging Face's ``attention_window``), one int or one per layer. Causal: the
  ``window // 2`` keys before it and itself.
* Dilation δ (one int, or one per head): the window steps over δ − 1 tokens. It is
  computed by splitting the sequence into δ interleaved subsequences, on each of
  which the dilated window is a plain one.
* Global tokens (``Layout.global_mask``, or ``global_positions`` such as [0] for
  [CLS]): every query also attends to them, and they attend to every key through
  their own q/k/v projections (``global_qkv``, as in the paper and HF).
* Packed documents (``Layout.doc_ids``) keep each window inside its document.

The window is computed in blocks of w = window // 2 queries against the three
blocks around them (two when causal): scores take O(T·w) memory and no T×T mask
is ever formed. ``attend_with_map`` builds the same attention densely (the
reference the blocked path is tested against). Decoding with a cache attends to
the last w cached keys."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn.attention.kernel import AttentionMap, Kernel
from sesame.nn.attention.linear import NO_DENSE, repeat_kv
from sesame.nn.layout import Layout


@dataclasses.dataclass
class LongformerOptions(Section):
    """``window``: even; keys seen = window // 2 each side; an int or one per layer.
    ``dilation``: an int, one per head, or one such entry per layer.
    ``global_positions``: token indices with global attention in every sequence."""

    window: Any = 512
    dilation: Any = 1
    global_positions: list[int] = dataclasses.field(default_factory=list)


def softmax_rows(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of float scores where ``mask``; rows with nothing
    visible give zeros (finite gradients, never NaN)."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, -1) * mask.any(-1, keepdim=True)


def fold(x: torch.Tensor, delta: int, value=0.0) -> torch.Tensor:
    """(B, H, T, ...) -> (B, H·δ, ⌈T/δ⌉, ...): the δ interleaved subsequences as extra heads."""
    pad = (-x.shape[2]) % delta
    x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad), value=value)
    m = x.shape[2] // delta
    x = x.reshape(x.shape[0], x.shape[1], m, delta, *x.shape[3:]).transpose(2, 3)
    return x.reshape(x.shape[0], x.shape[1] * delta, m, *x.shape[4:])


class LongformerAttention(Kernel):
    name = "longformer"
    supports = frozenset({"causal", "padding", "global", "documents"})
    reasons = {k: v for k, v in NO_DENSE.items() if k not in ("global", "documents")}
    reasons["cross"] = "a sliding window has no meaning between two sequences"
    Options = LongformerOptions
    takes_hidden = True

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        super().__init__(scale, dropout, config, layer)
        if config is None:
            raise ConfigError("the longformer kernel is built from a model config (its sizes)")
        window = self.opts.window
        if isinstance(window, list):
            if len(window) != config.layers:
                raise ConfigError(f"model.attention_options.window has {len(window)} entries for "
                                  f"{config.layers} layers; give one int or one per layer")
            window = window[layer]
        if not isinstance(window, int) or isinstance(window, bool) or window <= 0 or window % 2:
            raise ConfigError(f"model.attention_options.window must be a positive even int (keys seen: "
                              f"window // 2 on each side), got {window!r}")
        self.w = window // 2
        heads = config.num_heads
        dil = self.opts.dilation
        if isinstance(dil, list) and dil and isinstance(dil[0], list):
            if len(dil) != config.layers:
                raise ConfigError(f"model.attention_options.dilation has {len(dil)} per-layer entries "
                                  f"for {config.layers} layers")
            dil = dil[layer]
        dil = [dil] * heads if isinstance(dil, int) and not isinstance(dil, bool) else dil
        if not isinstance(dil, list) or len(dil) != heads or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dil):
            raise ConfigError(f"model.attention_options.dilation must be an int >= 1, one per head "
                              f"({heads}), or one such entry per layer; got {self.opts.dilation!r}")
        self.dilation = dil
        if any(p < 0 for p in self.opts.global_positions):
            raise ConfigError("model.attention_options.global_positions must be token indices >= 0")
        self.heads, self.kv_heads, self.dim = heads, config.kv_heads, config.dim_per_head
        self.sizes = [heads * self.dim, self.kv_heads * self.dim, self.kv_heads * self.dim]
        self.global_qkv = nn.Linear(config.hidden, sum(self.sizes), bias=config.bias)

    # ---- which tokens are global --------------------------------------
    def _globals(self, layout: Layout, b: int, t: int, device):
        """(index (B, G), valid (B, G)) of the global tokens, or None."""
        pos = tuple(p for p in self.opts.global_positions if p < t)
        if not pos and layout.global_mask is None:
            return None
        key = ("longformer-globals", pos, t)
        cache = layout._dense_cache
        if key not in cache:
            extra = None
            if pos:
                extra = torch.zeros(1, t, dtype=torch.bool, device=device)
                extra[0, list(pos)] = True
            cache[key] = layout.global_index(extra)
        if cache[key] is None:
            return None
        idx, valid = cache[key]
        return idx.expand(b, -1), valid.expand(b, -1)

    # ---- the sliding window, in blocks ---------------------------------
    def _band(self, q, k, v, key_ok, causal, extra=None, doc=None):
        """q, k, v (B, H, T, D); key_ok (B, H|1, T) bool; ``doc``: (B, H|1, T) document ids
        or None; ``extra``: (scores (B, H, T, G),
        mask, values (B, H, G, D)) of global keys, joined into each query's softmax."""
        b, h, t, d = q.shape
        w = self.w
        c = max(1, min(w, t))
        pad = (-t) % c
        n = (t + pad) // c
        right = 0 if causal else c
        span = 2 * c + right
        qb = F.pad(q, (0, 0, 0, pad)).view(b, h, n, c, d)
        kb = F.pad(k, (0, 0, c, pad + right)).unfold(2, span, c)  # (B, H, n, D, span), a view
        vb = F.pad(v, (0, 0, c, pad + right)).unfold(2, span, c)
        scores = (qb @ kb).float() * self.scale  # (B, H, n, c, span)
        rel = torch.arange(span, device=q.device)[None] - c - torch.arange(c, device=q.device)[:, None]
        band = (rel >= -w) & (rel <= (0 if causal else w))
        ok = F.pad(key_ok, (c, pad + right), value=False).unfold(-1, span, c)  # (B, H|1, n, span)
        mask = band & ok[:, :, :, None, :]
        if doc is not None:  # packed documents: keys only from the query's own document
            dq = F.pad(doc, (0, pad), value=-1).view(doc.shape[0], doc.shape[1], n, c)
            dk = F.pad(doc, (c, pad + right), value=-1).unfold(-1, span, c)
            mask = mask & (dq[..., :, None] == dk[..., None, :])
        scores = scores.reshape(b, h, n * c, span)
        mask = mask.reshape(mask.shape[0], mask.shape[1], n * c, span).expand(b, h, n * c, span)
        if extra is not None:
            g_scores, g_mask, g_values = extra
            g_mask = g_mask.expand(g_mask.shape[0], g_mask.shape[1], t, g_mask.shape[-1])
            g_scores, g_mask = F.pad(g_scores, (0, 0, 0, pad)), F.pad(g_mask, (0, 0, 0, pad), value=False)
            scores, mask = torch.cat([scores, g_scores], -1), torch.cat([mask.expand_as(scores), g_mask.expand(
                b, h, n * c, g_mask.shape[-1])], -1)
        # in place on a fresh tensor, and rows that see nothing zeroed on the (T, D) output, not
        # on the (T, span) probabilities: two fewer score-sized tensors at long T
        probs = torch.softmax(scores.masked_fill_(~mask, torch.finfo(scores.dtype).min), -1)
        if self.training and self.dropout:
            probs = F.dropout(probs, self.dropout)
        probs = probs.to(v.dtype)
        out = probs[..., :span].reshape(b, h, n, c, span) @ vb.transpose(-1, -2)
        out = out.reshape(b, h, n * c, d)
        if extra is not None:
            out = out + probs[..., span:] @ g_values
        return (out * mask.any(-1, keepdim=True))[:, :, :t]

    def _dilated(self, q, k, v, key_ok, causal, extra, doc=None):
        """Run the band per group of heads sharing a dilation δ, on δ interleaved subsequences."""
        b, h, t, d = q.shape
        out = torch.empty_like(q)
        for delta in sorted(set(self.dilation)):
            heads = [i for i, x in enumerate(self.dilation) if x == delta]
            idx = torch.tensor(heads, device=q.device)
            g = len(heads)

            def sel(x, idx=idx, g=g):
                return x if g == h or x.shape[1] == 1 else x.index_select(1, idx)

            qs, ks, vs, ok = sel(q), sel(k), sel(v), sel(key_ok)
            dc = None if doc is None else doc[:, None]
            ex = None if extra is None else (sel(extra[0]), sel(extra[1]), sel(extra[2]))
            if delta == 1:
                res = self._band(qs, ks, vs, ok, causal, ex, dc)
            else:
                okf = fold(ok.expand(b, g, t)[..., None], delta, False)[..., 0]
                exf = None
                if ex is not None:
                    gm = ex[1].expand(b, g, t, ex[1].shape[-1])
                    exf = (fold(ex[0], delta), fold(gm, delta, False), ex[2].repeat_interleave(delta, 1))
                dcf = None if dc is None else fold(dc.expand(b, g, t)[..., None], delta, -1)[..., 0]
                res = self._band(fold(qs, delta), fold(ks, delta), fold(vs, delta), okf, causal, exf, dcf)
                res = res.reshape(b, g, delta, -1, d).transpose(2, 3).reshape(b, g, -1, d)[:, :, :t]
            out = res if g == h else out.index_copy(1, idx, res)
        return out

    # ---- the kernel ------------------------------------------------------
    def forward(self, q, k, v, layout: Layout, bias=None, x=None):
        self.require(layout)
        if bias is not None:
            self.check({"bias"})
        k, v = repeat_kv(q, k, v)
        tq, tk = q.shape[2], k.shape[2]
        glob = self._globals(layout, q.shape[0], tk, q.device)
        if tq != tk:
            return self._decode(q, k, v, layout, glob)
        b, h = q.shape[:2]
        key_ok = torch.ones(b, 1, tk, dtype=torch.bool, device=q.device) if layout.key_padding is None \
            else layout.key_padding.bool()[:, None]
        extra = None
        if glob is not None and layout.doc_ids is not None:
            raise ConfigError("longformer global tokens with packed documents are not supported; "
                              "give one document per sequence")
        if glob is not None:
            idx, valid = glob
            is_global = torch.zeros(b, tk, dtype=torch.bool, device=q.device).scatter(1, idx, valid)
            g_ok = valid & key_ok[:, 0].gather(1, idx)  # (B, G)
            kg = k.gather(2, idx[:, None, :, None].expand(b, h, -1, k.shape[-1]))
            vg = v.gather(2, idx[:, None, :, None].expand(b, h, -1, v.shape[-1]))
            g_scores = (q @ kg.transpose(-1, -2)).float() * self.scale  # (B, H, T, G)
            g_mask = g_ok[:, None, None, :]
            if layout.causal:
                g_mask = g_mask & (idx[:, None, None, :] <= torch.arange(tq, device=q.device)[:, None])
            extra = (g_scores, g_mask, vg)
            key_ok = key_ok & ~is_global[:, None]  # global keys join through ``extra``, once
        doc = None if layout.doc_ids is None else layout.doc_ids.long()
        out = self._dilated(q, k, v, key_ok, layout.causal, extra, doc)
        if glob is not None:
            out = self._global_rows(out, x, layout, glob)
        return out

    def _global_qkv(self, x):
        b, t, _ = x.shape
        qg, kg, vg = self.global_qkv(x).split(self.sizes, -1)
        qg = qg.view(b, t, self.heads, self.dim).transpose(1, 2)
        kg = kg.view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        vg = vg.view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        kg, vg = repeat_kv(qg, kg, vg)
        return qg, kg, vg

    def _global_probs(self, qsel, kg, layout, idx):
        """Global queries (B, H, G, D) against every key: (B, H, G, T) probabilities."""
        t = kg.shape[2]
        scores = (qsel @ kg.transpose(-1, -2)).float() * self.scale
        mask = torch.ones(1, 1, 1, t, dtype=torch.bool, device=kg.device)
        if layout.key_padding is not None:
            mask = mask & layout.key_padding.bool()[:, None, None, :]
        if layout.causal:
            mask = mask & (torch.arange(t, device=kg.device) <= idx[:, None, :, None])
        return softmax_rows(scores, mask.expand_as(scores))

    def _global_rows(self, out, x, layout, glob):
        """Overwrite the global tokens' outputs with their attention over every key."""
        if x is None:
            raise ConfigError("longformer global attention needs the layer input (SelfAttention passes it)")
        idx, valid = glob
        b, h, t, d = out.shape
        qg, kg, vg = self._global_qkv(x)
        at = idx[:, None, :, None].expand(b, h, -1, d)
        probs = self._global_probs(qg.gather(2, at), kg, layout, idx)
        if self.training and self.dropout:
            probs = F.dropout(probs, self.dropout)
        g_out = probs.to(vg.dtype) @ vg  # (B, H, G, D)
        g_out = torch.where(valid[:, None, :, None], g_out, out.gather(2, at))
        return out.scatter(2, at, g_out)

    def _decode(self, q, k, v, layout, glob):
        """New queries at the end of a cache: each sees the last w keys and itself."""
        if glob is not None:
            raise ConfigError("longformer global attention cannot decode with a KV cache; "
                              "generate without global tokens")
        if not layout.causal:
            raise ConfigError("longformer attention decodes with a cache only in a causal decoder")
        tq, tk = q.shape[2], k.shape[2]
        start = layout.q_offset
        lo = max(0, start - self.w * max(self.dilation))
        ks, vs = k[:, :, lo:], v[:, :, lo:]
        kpos = torch.arange(lo, tk, device=q.device)
        qpos = torch.arange(start, start + tq, device=q.device)[:, None]
        dil = torch.tensor(self.dilation, device=q.device)[:, None, None]  # (H, 1, 1)
        rel = qpos - kpos  # (tq, keys)
        mask = (rel >= 0) & (rel <= self.w * dil) & (rel % dil == 0)  # (H, tq, keys)
        if layout.key_padding is not None:
            mask = mask & layout.key_padding.bool()[:, None, None, lo:]
        if layout.doc_ids is not None:
            docs = layout.doc_ids
            mask = mask & (docs[:, None, -tq:, None] == docs[:, None, None, lo:])
        scores = (q @ ks.transpose(-1, -2)).float() * self.scale
        probs = softmax_rows(scores, mask.expand_as(scores))
        return probs.to(v.dtype) @ vs

    def attend_with_map(self, q, k, v, layout, bias=None, x=None):
        """The same attention built densely, (B, H, T, T): the reference for the blocked path."""
        self.require(layout)
        k, v = repeat_kv(q, k, v)
        b, h, t, _ = q.shape
        pos = torch.arange(t, device=q.device)
        rel = pos[None, :] - pos[:, None]  # key - query
        dil = torch.tensor(self.dilation, device=q.device)[:, None, None]
        mask = (rel.abs() <= self.w * dil) & (rel % dil == 0)
        if layout.causal:
            mask = mask & (rel <= 0)
        mask = mask[None].expand(b, h, t, t)
        glob = self._globals(layout, b, t, q.device)
        key_ok = torch.ones(b, t, dtype=torch.bool, device=q.device) if layout.key_padding is None \
            else layout.key_padding.bool()
        if glob is not None:
            idx, valid = glob
            is_global = torch.zeros(b, t, dtype=torch.bool, device=q.device).scatter(1, idx, valid)
            reach = is_global[:, None, None, :]
            if layout.causal:
                reach = reach & (rel <= 0)
            mask = (mask & ~is_global[:, None, None, :]) | reach
        mask = mask & key_ok[:, None, None, :]
        if layout.doc_ids is not None:
            mask = mask & (layout.doc_ids[:, None, :, None] == layout.doc_ids[:, None, None, :])
        scores = (q @ k.transpose(-1, -2)).float() * self.scale
        probs = softmax_rows(scores, mask)
        if glob is not None:
            idx, valid = glob
            qg, kg, vg = self._global_qkv(x)
            at = idx[:, None, :, None]
            g_probs = self._global_probs(qg.gather(2, at.expand(b, h, -1, q.shape[-1])), kg, layout, idx)
            out = (probs.to(v.dtype) @ v)
            g_out = g_probs.to(vg.dtype) @ vg
            g_out = torch.where(valid[:, None, :, None], g_out, out.gather(2, at.expand(b, h, -1, v.shape[-1])))
            out = out.scatter(2, at.expand(b, h, -1, v.shape[-1]), g_out)
            keep = probs.gather(2, at.expand(b, h, -1, t))
            probs = probs.scatter(2, at.expand(b, h, -1, t), torch.where(valid[:, None, :, None], g_probs, keep))
            scores = None
        else:
            out = probs.to(v.dtype) @ v
            scores = scores.masked_fill(~mask, float("-inf"))
        return out, AttentionMap(probs.to(q.dtype), scores)


register("attention", "longformer")(LongformerAttention)
