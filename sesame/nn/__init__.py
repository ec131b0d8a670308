"""Building blocks: embeddings, positions, attention kernels, feed-forward, norms, blocks, cache."""
from sesame.nn.block import Block, Context, Stack
from sesame.nn.cache import KVCache, LayerCache
from sesame.nn.embeddings import Embeddings
from sesame.nn.layout import Layout

__all__ = ["Block", "Context", "Stack", "KVCache", "LayerCache", "Embeddings", "Layout"]
