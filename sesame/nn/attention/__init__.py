"""Attention: kernels (one file each) and the multi-head modules that call them."""
from sesame.nn.attention.full import FullAttention
from sesame.nn.attention.kernel import Kernel, build_kernel
from sesame.nn.attention.multihead import CrossAttention, SelfAttention

__all__ = ["Kernel", "FullAttention", "build_kernel", "SelfAttention", "CrossAttention"]
