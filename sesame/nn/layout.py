"""What may attend to what. A ``Layout`` is built fresh from each batch and says
it structurally (causal, key padding, document ids, prefix length, an explicit
boolean matrix); kernels read the fields they support. Convention everywhere:
boolean, ``True`` means "may attend"."""
from __future__ import annotations

import dataclasses
from functools import cached_property

import torch

FEATURES = ("causal", "padding", "documents", "prefix", "explicit", "bias")

# issue 13: "global": Longformer's global tokens (``Layout.global_mask``); "cross": queries and
# keys from different sequences (cross-attention), a build-time need only
FEATURES += ("global", "cross")
# issue 11: "anticausal": each query sees itself and the keys after it (UniLM right-to-left)
FEATURES += ("anticausal",)
# issue 12: "order": XLNet's factorisation order (``Layout.order``, content / query stream)
FEATURES += ("order",)
# issue 12: "backward": rows of XLNet's backward data stream (bi_data): relative distances negated
FEATURES += ("backward",)


@dataclasses.dataclass(eq=False)
class Layout:
    """Attention structure for one forward pass.

    ``key_padding``: (B, Tk) bool, True at real tokens. ``doc_ids``: (B, Tk) int,
    queries attend only within their document (a document is a run of equal ids,
    as packing writes them; the linear kernels read runs, not id equality). ``prefix_len``: (B,) int, keys
    before it are visible to every query (UniLM seq2seq / prefix LM).
    ``mask``: explicit (B|1, H|1, Tq, Tk) bool. ``q_offset``: index of the first
    query among the keys (decoding with a cache, or a recurrence memory).
    ``segments``: (B, Tk) int segment of each key (queries are the last Tq), read by
    the ``xl`` kernel's relative segment term (XLNet); not a mask feature.
    ``order``: (B, T) int rank of each of the last T keys in a factorisation order
    (XLNet): the content stream sees keys ranked no later than the query, the query
    stream (``query_stream``) only keys ranked strictly earlier; earlier keys (memory)
    are visible to all.
    ``global_mask``: (B, T) bool, True at tokens with global attention (Longformer:
    they attend to every token and every token attends to them); read only by
    kernels that declare "global", never by ``dense``.
    ``anticausal``: each query sees itself and the keys after it (UniLM's right-to-left LM).
    ``backward``: (B,) bool, rows of XLNet's backward stream (``bi_data``): the ``xl``
    kernel encodes their relative distances negated; not a mask feature.
    """

    causal: bool = False
    key_padding: torch.Tensor | None = None
    doc_ids: torch.Tensor | None = None
    prefix_len: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    q_offset: int = 0
    global_mask: torch.Tensor | None = None
    anticausal: bool = False
    segments: torch.Tensor | None = None
    order: torch.Tensor | None = None
    query_stream: bool = False
    backward: torch.Tensor | None = None

    def features(self) -> set[str]:
        out = set()
        if self.causal:
            out.add("causal")
        if self.key_padding is not None:
            out.add("padding")
        if self.doc_ids is not None:
            out.add("documents")
        if self.prefix_len is not None:
            out.add("prefix")
        if self.mask is not None:
            out.add("explicit")
        if self.global_mask is not None:
            out.add("global")
        if self.anticausal:
            out.add("anticausal")
        if self.order is not None:
            out.add("order")
        if self.backward is not None:
            out.add("backward")
        return out

    def global_index(self, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(index (B, G), valid (B, G)) of the global tokens (``global_mask`` or'ed with
        ``extra``, (B|1, T) bool), G the most any row has; None when there are none.
        One host sync per layout (G sizes the tensors), cached for every layer."""
        key = ("global", None if extra is None else id(extra))
        cache = self._dense_cache
        if key not in cache:
            mask = self.global_mask if extra is None else (
                extra if self.global_mask is None else self.global_mask.bool() | extra)
            if mask is None:
                cache[key] = None
            else:
                mask = mask.bool()
                count = mask.sum(-1)
                g = int(count.max()) if mask.numel() else 0
                order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)[:, :g]
                cache[key] = (order, torch.arange(g, device=mask.device)[None] < count[:, None]) if g else None
        return cache[key]

    def only_causal(self, tq: int, tk: int) -> bool:
        """True when plain ``is_causal`` attention is exact (the fastest path)."""
        return self.causal and self.features() == {"causal"} and self.q_offset == 0 and tq == tk

    def dense(self, tq: int, tk: int, device: torch.device) -> torch.Tensor | None:
        """The (B|1, 1, Tq, Tk) boolean mask, or None when everything may attend."""
        key = (tq, tk)
        cache = self._dense_cache
        if key not in cache:
            cache[key] = self._build(tq, tk, device)
        return cache[key]

    @cached_property
    def _dense_cache(self) -> dict:
        return {}

    def _build(self, tq: int, tk: int, device: torch.device) -> torch.Tensor | None:
        if self.features() == {"causal"} and self.q_offset >= tk - 1:
            return None  # a decoding step: one query after every key sees them all
        m = None
        if self.causal:
            qpos = torch.arange(tq, device=device) + self.q_offset
            kpos = torch.arange(tk, device=device)
            m = (kpos[None, :] <= qpos[:, None])[None, None]
            if self.prefix_len is not None:
                m = m | (kpos[None, None, None, :] < self.prefix_len.to(device)[:, None, None, None])
        if self.anticausal:
            qpos = torch.arange(tq, device=device) + self.q_offset
            after = (torch.arange(tk, device=device)[None, :] >= qpos[:, None])[None, None]
            m = after if m is None else m & after
        if self.doc_ids is not None:
            kd = self.doc_ids.to(device)
            qd = kd[:, -tq:] if kd.shape[1] >= tq else kd
            same = (qd[:, :, None] == kd[:, None, :])[:, None]
            m = same if m is None else m & same
        if self.key_padding is not None:
            kp = self.key_padding.to(device=device, dtype=torch.bool)[:, None, None, :]
            m = kp if m is None else m & kp
        if self.mask is not None:
            em = self.mask.to(device=device, dtype=torch.bool)
            m = em if m is None else m & em
        if self.order is not None:
            r = self.order.to(device)
            seen = (r[:, None, :] < r[:, :, None]) if self.query_stream else (r[:, None, :] <= r[:, :, None])
            seen = seen[:, -tq:]
            if tk > r.shape[1]:  # memory before the current positions: visible to every query
                seen = torch.cat([seen.new_ones(r.shape[0], seen.shape[1], tk - r.shape[1]), seen], -1)
            m = seen[:, None] if m is None else m & seen[:, None]
        return m
