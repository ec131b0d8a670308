"""Attention: kernels (one file each) and the multi-head modules that call them."""
from sesame.nn.attention.full import FullAttention
from sesame.nn.attention.kernel import AttentionMap, Kernel, build_kernel, dense_attention
from sesame.nn.attention.multihead import CrossAttention, SelfAttention
from sesame.nn.attention.xl import XLAttention  # noqa: F401  (registers "xl")

# efficient kernels (issue 13), registered on import
from sesame.nn.attention import linear, linformer, longformer, lsh, performer  # noqa: E402,F401

__all__ = ["AttentionMap", "dense_attention", "Kernel", "FullAttention", "build_kernel", "SelfAttention",
           "CrossAttention"]
