"""XLNet's two-stream self-attention (Yang et al., 2019).

The content stream ``h`` is ordinary self-attention: position i sees the positions
allowed by its layout (under a factorisation order: itself and those earlier in the
order). The query stream ``g`` predicts a token from its position without seeing its
content: it starts from a learned vector ``w`` (HF's ``mask_emb``), queries the
content stream's keys and values (memory included) under the query layout (positions
strictly earlier in the order), and gets position information from the relative
attention itself. Both streams use the layer's weights (projections, kernel, norms,
feed-forward). ``target_mapping`` (B, M, T) picks the M predicted positions; the query
stream then has M rows, mapped onto positions for the attention and back.

Fine-tuning and feature extraction use the content stream only (no target mapping)."""
from __future__ import annotations

import torch
from torch import nn

from sesame.nn.layout import Layout


def stream_layouts(perm_mask: torch.Tensor | None, attention_mask: torch.Tensor | None, mem: int = 0,
                   segments: torch.Tensor | None = None) -> tuple[Layout, Layout]:
    """(content, query) layouts from HF-style inputs: ``perm_mask`` (B, T, T) with 1 where
    query i may NOT see j, ``attention_mask`` (B, T) with 1 at real tokens; ``mem``
    memory positions come first and are visible to all. The content stream always sees
    itself; the query stream sees exactly what ``perm_mask`` and padding allow."""
    ref = perm_mask if perm_mask is not None else attention_mask
    if ref is None:
        return Layout(q_offset=mem, segments=segments), Layout(q_offset=mem, segments=segments)
    b, t = ref.shape[0], ref.shape[-1]
    blocked = torch.zeros(b, t, t, dtype=torch.bool, device=ref.device)
    if perm_mask is not None:
        blocked |= perm_mask.bool()
    if attention_mask is not None:
        blocked |= ~attention_mask.bool()[:, None, :]
    query = ~blocked
    content = query | torch.eye(t, dtype=torch.bool, device=ref.device)
    if mem:
        seen = torch.ones(b, t, mem, dtype=torch.bool, device=ref.device)
        query, content = torch.cat([seen, query], -1), torch.cat([seen, content], -1)
    return (Layout(mask=content[:, None], q_offset=mem, segments=segments),
            Layout(mask=query[:, None], q_offset=mem, segments=segments))


def order_layouts(order: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  segments: torch.Tensor | None = None, backward: torch.Tensor | None = None, mem: int = 0
                  ) -> tuple[Layout, Layout]:
    """(content, query) layouts realising a factorisation order: ``order`` (B, T) is each
    position's rank (ties allowed: a span predicted together). Content: i sees j iff
    rank(j) <= rank(i); query: iff rank(j) < rank(i); padding keys are hidden; ``mem``
    memory positions come first and are visible to both streams (``attention_mask``,
    when given, covers the memory too). ``backward``: (B,) bool, the rows of the
    backward stream (bi_data)."""
    return (Layout(key_padding=attention_mask, order=order, segments=segments, backward=backward, q_offset=mem),
            Layout(key_padding=attention_mask, order=order, query_stream=True, segments=segments,
                   backward=backward, q_offset=mem))


class QueryStream(nn.Module):
    """The learned start vector ``w`` of the query stream."""

    def __init__(self, hidden: int, std: float):
        super().__init__()
        self.w = nn.Parameter(torch.randn(hidden) * std)

    def start(self, batch: int, targets: int) -> torch.Tensor:
        return self.w.expand(batch, targets, -1)


def _heads(x, heads, dim):
    b, t, _ = x.shape
    return x.view(b, t, heads, dim).transpose(1, 2)


def two_stream_attention(attn, h, g, layout_h: Layout, layout_g: Layout, target_mapping, cache=None):
    """One layer's attention for both streams with ``attn``'s (a SelfAttention) weights:
    returns the two outputs after the output projection."""
    src = cache.extend(h) if cache is not None else h
    q_h, k, v = attn.project_with_memory(h, src)
    w, bias = attn.qkv.weight, attn.qkv.bias
    n = attn.sizes[0]
    q_g = nn.functional.linear(g, w[:n], None if bias is None else bias[:n])
    q_h, q_g = _heads(q_h, attn.heads, attn.dim), _heads(q_g, attn.heads, attn.dim)
    k, v = _heads(k, attn.kv_heads, attn.dim), _heads(v, attn.kv_heads, attn.dim)
    tm = target_mapping.to(q_g.dtype) if target_mapping is not None else None
    if tm is not None:  # the M query rows sit at their target positions
        q_g = torch.einsum("bhmd,bml->bhld", q_g, tm)
    out_h = attn.kernel(q_h, k, v, layout_h)
    out_g = attn.kernel(q_g, k, v, layout_g)
    if tm is not None:
        out_g = torch.einsum("bhld,bml->bhmd", out_g, tm)

    def merge(o):
        b, _, t, _ = o.shape
        return attn.out(o.transpose(1, 2).reshape(b, t, attn.heads * attn.dim))

    return merge(out_h), merge(out_g)


def two_stream_block(block, h, g, layout_h: Layout, layout_g: Layout, target_mapping, cache=None):
    """A Block (post- or pre-norm) applied to both streams, attention shared as above."""
    if block.prenorm:
        a_h, a_g = two_stream_attention(block.attn, block.attn_norm(h), block.attn_norm(g), layout_h, layout_g,
                                        target_mapping, cache)
        h, g = h + block.drop(a_h), g + block.drop(a_g)
        return h + block.ffn(block.ffn_norm(h)), g + block.ffn(block.ffn_norm(g))
    a_h, a_g = two_stream_attention(block.attn, h, g, layout_h, layout_g, target_mapping, cache)
    h, g = block.attn_norm(h + block.drop(a_h)), block.attn_norm(g + block.drop(a_g))
    return block.ffn_norm(h + block.ffn(h)), block.ffn_norm(g + block.ffn(g))
