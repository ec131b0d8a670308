"""Performer: FAVOR+ (Choromanski et al., 2021), softmax attention estimated with
positive orthogonal random features.

exp(x·y) = E_ω[φ(x)·φ(y)] with φ(x) = exp(Ωx − |x|²/2) / √m and the rows of Ω
drawn from N(0, I) (here in orthogonal blocks, each row rescaled to a χ_d norm,
so every row stays Gaussian and the estimate stays unbiased). With x = q·√s and
y = k·√s (s the softmax scale) the estimate of softmax(s q kᵀ) is linear
attention with φ, so this kernel is ``linear`` with random features: the same
non-causal product, chunked causal scan and recurrent decoding state.

Ω is a buffer (saved with the model, fixed in eval); in training it is redrawn
every ``redraw_every`` forward passes from a generator seeded by (seed, layer,
draw), so runs are reproducible. Each query's features are divided by their
largest value, which cancels in the normalisation and keeps exp in range."""
from __future__ import annotations

import dataclasses
import math

import torch

from sesame.config.base import Section
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.nn.attention.linear import LinearAttention
from sesame.nn.reversible import recomputing


def gaussian_features(m: int, d: int, generator: torch.Generator, orthogonal: bool = True) -> torch.Tensor:
    """(m, d) rows ω ~ N(0, I); with ``orthogonal``, rows are orthogonal within blocks of d."""
    if not orthogonal:
        return torch.randn(m, d, generator=generator)
    blocks = []
    for _ in range(math.ceil(m / d)):
        q, r = torch.linalg.qr(torch.randn(d, d, generator=generator))
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # sign-fixed: Haar-distributed
    norms = torch.randn(m, d, generator=generator).norm(dim=1, keepdim=True)
    return torch.cat(blocks)[:m] * norms


def softmax_features(x: torch.Tensor, omega: torch.Tensor, stabilise: bool = False) -> torch.Tensor:
    """φ(x) = exp(Ωx − |x|²/2) / √m, so that E[φ(x)·φ(y)] = exp(x·y). ``stabilise``
    divides each row by its largest feature (only for queries, where it cancels)."""
    logits = x @ omega.T - x.pow(2).sum(-1, keepdim=True) / 2
    if stabilise:
        logits = logits - logits.amax(-1, keepdim=True).detach()
    return torch.exp(logits) / math.sqrt(omega.shape[0])


@dataclasses.dataclass
class PerformerOptions(Section):
    """``features``: m random features; ``redraw_every``: training forward passes
    between redraws (0: never); ``orthogonal``: orthogonal blocks (FAVOR+) or i.i.d.;
    ``chunk``: tokens per chunk of the causal scan; ``seed``: of the draws."""

    features: int = 256
    redraw_every: int = 1000
    orthogonal: bool = True
    chunk: int = 64
    seed: int = 0

    def validate(self) -> None:
        if self.features <= 0 or self.chunk <= 0 or self.redraw_every < 0:
            raise ConfigError("model.attention_options: performer needs features > 0, chunk > 0 and "
                              "redraw_every >= 0 (0 = never redraw)")


@register("attention", "performer")
class PerformerAttention(LinearAttention):
    name = "performer"
    Options = PerformerOptions

    def __init__(self, scale: float, dropout: float, config=None, layer: int = 0):
        super().__init__(scale, dropout, config, layer)
        if config is None:
            raise ConfigError("the performer kernel is built from a model config (its head size)")
        self.dim = config.dim_per_head
        self.draws = 0
        self.calls = 0
        self.register_buffer("omega", self.draw())

    def draw(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.opts.seed * 1_000_003 + self.layer * 10_007 + self.draws)
        return gaussian_features(self.opts.features, self.dim, gen, self.opts.orthogonal)

    def redraw(self) -> None:
        self.draws += 1
        self.omega.copy_(self.draw().to(self.omega.device))

    def featurize(self, q, k):
        if self.training and not recomputing():
            every = self.opts.redraw_every
            if every and self.calls and self.calls % every == 0:
                self.redraw()
            self.calls += 1
        root = math.sqrt(self.scale)
        omega = self.omega.float()
        return (softmax_features(q.float() * root, omega, stabilise=True),
                softmax_features(k.float() * root, omega))
