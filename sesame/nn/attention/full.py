"""Full (dense) attention on ``scaled_dot_product_attention``.

Plain causal attention takes SDPA's ``is_causal`` fast path; any other layout
becomes one boolean mask per forward pass. Query rows that may attend to
nothing get zeros, never NaN."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sesame.config.registry import register
from sesame.nn.attention.kernel import Kernel
from sesame.nn.layout import FEATURES, Layout


@register("attention", "full")
class FullAttention(Kernel):
    name = "full"
    supports = frozenset(FEATURES) - {"global", "backward"}  # global tokens are a Longformer notion
    reasons = {"global": "every token already sees every other; drop global_mask, or use "
                         "model.attention = 'longformer'",
               "backward": "a backward stream (bi_data) negates relative distances, which only "
                           "model.attention = 'xl' encodes"}

    def forward(self, q, k, v, layout: Layout, bias: torch.Tensor | None = None):
        if layout.global_mask is not None:
            self.check({"global"})
        tq, tk = q.shape[2], k.shape[2]
        gqa = q.shape[1] != k.shape[1]
        drop = self.dropout if self.training else 0.0
        if bias is None and layout.only_causal(tq, tk):
            return F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=drop, scale=self.scale, enable_gqa=gqa
            )
        mask = layout.dense(tq, tk, q.device)
        valid = None
        if mask is not None:
            valid = mask.any(-1, keepdim=True)  # rows with at least one visible key
            mask = mask | ~valid
        if bias is not None:
            bias = bias.to(q.dtype)
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=drop, scale=self.scale, enable_gqa=gqa
        )
        if valid is not None:
            out = out * valid.to(out.dtype)
        return out
