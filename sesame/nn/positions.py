"""Position schemes behind one interface with three hooks:

* ``input``: a vector added to the token embedding (learned, sinusoidal);
* ``bias``: a bias on the attention scores (T5 buckets, ALiBi);
* ``qk``: a transform of queries and keys (rotary);
* ``layer``: relative representations that read the queries/keys themselves and
  are learned per layer (Shaw); each self-attention layer owns one instance and
  asks it for a score bias (and, optionally, a value term).

The body asks ``position.hook`` and calls ``embed``, ``bias`` or ``rotate``.
Transformer-XL's four-term score is not a position hook but its own kernel
(``nn/attention/xl.py``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.config.registry import register


class Position(nn.Module):
    hook = "none"

    def embed(self, positions: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, E)
        raise NotImplementedError

    def bias(self, qpos: torch.Tensor, kpos: torch.Tensor) -> torch.Tensor:  # -> (1, H, Tq, Tk)
        raise NotImplementedError

    def rotate(self, q, k, positions):  # (B, H, T, D) each, positions (B, T)
        raise NotImplementedError


@register("position", "none")
class NoPosition(Position):
    def __init__(self, config: ModelConfig):
        super().__init__()


@register("position", "learned")
class Learned(Position):
    """A trained table; ``position_offset`` shifts indices (RoBERTa starts at 2)."""

    hook = "input"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.offset = config.position_offset
        self.table = nn.Embedding(config.max_positions + config.position_offset, config.embed_dim)

    def embed(self, positions):
        return self.table(positions + self.offset)


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed sin/cos code for integer positions, (..., dim)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angle = positions.float()[..., None] * freq
    out = torch.cat([angle.sin(), angle.cos()], dim=-1)
    return nn.functional.pad(out, (0, dim - 2 * half))


@register("position", "sinusoidal")
class Sinusoidal(Position):
    hook = "input"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dim = config.embed_dim

    def embed(self, positions):
        return sinusoid(positions, self.dim)


@register("position", "rotary")
class Rotary(Position):
    """RoPE in the half-split convention (the first and second halves of each
    head's dimensions form the rotated pairs)."""

    hook = "qk"

    def __init__(self, config: ModelConfig):
        super().__init__()
        dim = config.dim_per_head
        # a plain attribute, not a buffer: model.to(bfloat16) must not round the frequencies
        self.inv_freq = (1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))).float()

    def angles(self, positions: torch.Tensor):
        if self.inv_freq.device != positions.device:
            self.inv_freq = self.inv_freq.to(positions.device)
        angle = positions.float()[..., None] * self.inv_freq  # (B, T, D/2)
        angle = torch.cat([angle, angle], dim=-1)[:, None]  # (B, 1, T, D)
        return angle.cos(), angle.sin()

    @staticmethod
    def turn(x, cos, sin):
        x1, x2 = x.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return (x * cos + rotated * sin).to(x.dtype)

    def rotate(self, q, k, positions):
        cos, sin = self.angles(positions)
        return self.turn(q, cos, sin), self.turn(k, cos, sin)


@register("position", "t5")
class T5Bias(Position):
    """Learned scalar bias per head and log-spaced relative-distance bucket."""

    hook = "bias"

    def __init__(self, config: ModelConfig, bidirectional: bool | None = None):
        super().__init__()
        self.buckets = config.relative_buckets
        self.max_distance = config.relative_max_distance
        self.bidirectional = (not config.is_causal) if bidirectional is None else bidirectional
        self.table = nn.Embedding(self.buckets, config.num_heads)

    def bucket(self, rel: torch.Tensor) -> torch.Tensor:
        n = self.buckets
        out = torch.zeros_like(rel)
        if self.bidirectional:
            n //= 2
            out = out + (rel > 0).long() * n
            rel = rel.abs()
        else:
            rel = -torch.clamp(rel, max=0)
        exact = n // 2
        small = rel < exact
        large = exact + (
            torch.log(rel.float().clamp(min=1) / exact) / math.log(self.max_distance / exact) * (n - exact)
        ).long()
        large = torch.clamp(large, max=n - 1)
        return out + torch.where(small, rel, large)

    def bias(self, qpos, kpos):
        rel = kpos[None, :] - qpos[:, None]
        return self.table(self.bucket(rel)).permute(2, 0, 1)[None]


def alibi_slopes(heads: int) -> torch.Tensor:
    """Press et al.'s geometric slopes, extended for head counts that are not powers of 2."""
    closest = 2 ** math.floor(math.log2(heads))
    base = [2 ** (-8 * (i + 1) / closest) for i in range(closest)]
    if closest < heads:
        extra = [2 ** (-4 * (2 * i + 1) / closest) for i in range(heads - closest)]
        base += extra
    return torch.tensor(base)


@register("position", "alibi")
class ALiBi(Position):
    hook = "bias"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(config.num_heads), persistent=False)

    def bias(self, qpos, kpos):
        dist = (kpos[None, :] - qpos[:, None]).abs().float()
        return -(self.slopes[:, None, None] * dist)[None]


@register("position", "shaw")
class Shaw(Position):
    """Shaw et al. (2018) relative position representations: learned vectors
    a[clip(i - j, -k, k)] of the head size, shared by the heads of one layer.
    The score gains q_i . a_ij (and, with ``relative_key_query``, k_j . a_ij, HF's
    ``relative_key_query``); with ``relative_values`` the output gains
    sum_j p_ij a^V_ij. i - j is the query's index minus the key's (among all keys,
    cached ones included); k = ``relative_max_distance``."""

    hook = "layer"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.clip = config.relative_max_distance
        size = 2 * self.clip + 1
        self.keys = nn.Embedding(size, config.dim_per_head)
        self.values = nn.Embedding(size, config.dim_per_head) if config.relative_values else None
        self.key_query = config.relative_key_query

    def table(self, weight: torch.Tensor, tq: int, tk: int) -> torch.Tensor:
        """(Tq, Tk, D): the vector for each (query, key) pair; queries are the last Tq keys."""
        kpos = torch.arange(tk, device=weight.device)
        rel = (kpos[tk - tq:, None] - kpos[None, :]).clamp(-self.clip, self.clip) + self.clip
        return weight[rel]

    def score(self, q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
        """The (B, H, Tq, Tk) bias, already scaled like q . k."""
        a = self.table(self.keys.weight, q.shape[2], k.shape[2]).to(q.dtype)
        out = torch.einsum("bhqd,qkd->bhqk", q, a)
        if self.key_query:
            if k.shape[1] != q.shape[1]:
                k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
            out = out + torch.einsum("bhkd,qkd->bhqk", k, a)
        return out * scale

    def value_term(self, probs: torch.Tensor) -> torch.Tensor:
        """sum_j p_ij a^V_ij, (B, H, Tq, D)."""
        a = self.table(self.values.weight, probs.shape[2], probs.shape[3]).to(probs.dtype)
        return torch.einsum("bhqk,qkd->bhqd", probs, a)


def build_position(config: ModelConfig) -> Position:
    """The body's position module; a per-layer scheme (hook ``layer``) lives in each
    attention layer instead (``layer_position``), so the body gets none."""
    from sesame.config.registry import get

    cls = get("position", config.position)
    return NoPosition(config) if cls.hook == "layer" else cls(config)


def layer_position(config: ModelConfig) -> Position | None:
    """The per-layer position module of one attention layer, or None."""
    from sesame.config.registry import get

    cls = get("position", config.position)
    return cls(config) if cls.hook == "layer" else None
