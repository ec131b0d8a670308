"""What may attend to what. A ``Layout`` is built fresh from each batch and says
it structurally (causal, key padding, document ids, prefix length, an explicit
boolean matrix); kernels read the fields they support. Convention everywhere:
boolean, ``True`` means "may attend"."""
from __future__ import annotations

import dataclasses
from functools import cached_property

import torch

FEATURES = ("causal", "padding", "documents", "prefix", "explicit", "bias", "order")


@dataclasses.dataclass(eq=False)
class Layout:
    """Attention structure for one forward pass.

    ``key_padding``: (B, Tk) bool, True at real tokens. ``doc_ids``: (B, Tk) int,
    queries attend only within their document. ``prefix_len``: (B,) int, keys
    before it are visible to every query (UniLM seq2seq / prefix LM).
    ``mask``: explicit (B|1, H|1, Tq, Tk) bool. ``q_offset``: index of the first
    query among the keys (decoding with a cache, or a recurrence memory).
    ``segments``: (B, Tk) int segment of each key (queries are the last Tq), read by
    the ``xl`` kernel's relative segment term (XLNet); not a mask feature.
    ``order``: (B, T) int rank of each of the last T keys in a factorisation order
    (XLNet): the content stream sees keys ranked no later than the query, the query
    stream (``query_stream``) only keys ranked strictly earlier; earlier keys (memory)
    are visible to all.
    """

    causal: bool = False
    key_padding: torch.Tensor | None = None
    doc_ids: torch.Tensor | None = None
    prefix_len: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    q_offset: int = 0
    segments: torch.Tensor | None = None
    order: torch.Tensor | None = None
    query_stream: bool = False

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
        if self.order is not None:
            out.add("order")
        return out

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
