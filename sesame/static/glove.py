"""GloVe (Pennington et al. 2014): weighted least squares on the log co-occurrence counts,

    J = sum over X_ij > 0 of f(X_ij) (w_i . c_j + b_i + b~_j - log X_ij) ** 2,
    f(x) = min(1, (x / x_max) ** alpha),

trained with AdaGrad over shuffled batches of non-zero entries (the gradients of a batch
that share a row are summed before that row's AdaGrad step). The word vectors are
w + c (word and context vectors summed), as the paper reports."""
from __future__ import annotations

import numpy as np
import torch

from sesame.static.config import StaticConfig


def weighting(x: np.ndarray | torch.Tensor, x_max: float, alpha: float):
    """f(x) = (x / x_max) ** alpha below x_max, 1 from there."""
    if isinstance(x, torch.Tensor):
        return torch.clamp(x / x_max, max=1.0) ** alpha
    return np.minimum(np.asarray(x, dtype=np.float64) / x_max, 1.0) ** alpha


class GloVe:
    """Parameters, AdaGrad accumulators and the update of one GloVe run."""

    def __init__(self, cfg: StaticConfig, vocab_size: int):
        self.cfg = cfg
        v, d = vocab_size, cfg.dim
        gen = torch.Generator().manual_seed(cfg.seed)
        self.w = (torch.rand(v, d, generator=gen) - 0.5) / d
        self.c = (torch.rand(v, d, generator=gen) - 0.5) / d
        self.bw = torch.zeros(v)
        self.bc = torch.zeros(v)
        # AdaGrad accumulators start at 1, as in the reference implementation
        self.gw, self.gc = torch.ones(v, d), torch.ones(v, d)
        self.gbw, self.gbc = torch.ones(v), torch.ones(v)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("w", "c", "bw", "bc", "gw", "gc", "gbw", "gbc")}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, t in tensors.items():
            getattr(self, name).copy_(t)

    def train_epoch(self, rows: torch.Tensor, cols: torch.Tensor, logx: torch.Tensor, fx: torch.Tensor,
                    rng: np.random.Generator, progress=None) -> float:
        """One pass over the non-zero entries in a random order; returns the summed loss J."""
        n = len(rows)
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for a in range(0, n, self.cfg.batch):
            idx = order[a:a + self.cfg.batch]
            total += self.step(rows[idx], cols[idx], logx[idx], fx[idx])
            if progress:
                progress(len(idx))
        return total

    def step(self, i: torch.Tensor, j: torch.Tensor, logx: torch.Tensor, fx: torch.Tensor) -> float:
        lr = self.cfg.lr
        wi, cj = self.w.index_select(0, i), self.c.index_select(0, j)
        diff = (wi * cj).sum(1) + self.bw[i] + self.bc[j] - logx
        fdiff = fx * diff
        loss = float((fdiff * diff).sum())
        g = fdiff[:, None]
        _adagrad(self.w, self.gw, i, g * cj, lr)
        _adagrad(self.c, self.gc, j, g * wi, lr)
        _adagrad(self.bw, self.gbw, i, fdiff, lr)
        _adagrad(self.bc, self.gbc, j, fdiff, lr)
        return loss

    def vectors(self) -> np.ndarray:
        return (self.w + self.c).numpy()


def _adagrad(param: torch.Tensor, accum: torch.Tensor, idx: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    """The gradient of the loss J / 2 on rows ``idx`` (duplicates summed), then AdaGrad."""
    uniq, inv = torch.unique(idx, return_inverse=True)
    g = torch.zeros((len(uniq), *param.shape[1:]), dtype=param.dtype).index_add_(0, inv, grad)
    acc = accum[uniq] + g * g
    accum[uniq] = acc
    param[uniq] -= lr * g / acc.sqrt()
