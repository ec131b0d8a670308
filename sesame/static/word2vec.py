"""word2vec (Mikolov et al. 2013) and fastText (Bojanowski et al. 2017) training: skip-gram
or CBOW, with negative sampling or hierarchical softmax, as vectorised SGD in torch.

A chunk of the corpus is subsampled, turned into examples by the dynamic window, shuffled,
and trained ``batch`` examples at a time: one gather of the input and output rows, one
batched product, one scatter-add of the updates (the gradients of examples in a batch that
share a row add up, as in Hogwild with the batch as the unit). The input vector of an
example is the mean of its input rows (CBOW: the context words; fastText: the word and its
n-grams, for each context word under CBOW); as in word2vec and fastText, every input row
receives the full error. The learning rate decays linearly from ``lr`` to ``min_lr`` over
all words of the run."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from sesame.static.config import StaticConfig
from sesame.static.corpus import Vocab
from sesame.static.huffman import huffman_paths
from sesame.static.sampling import NoiseSampler, cbow_contexts, keep_probability, skipgram_pairs, subsample
from sesame.static.subwords import ngram_buckets, subword_table


class Word2Vec:
    """Parameters and the update step of one word2vec / fastText run."""

    def __init__(self, cfg: StaticConfig, vocab: Vocab):
        self.cfg, self.vocab = cfg, vocab
        v, d = len(vocab), cfg.dim
        self.fasttext = cfg.method == "fasttext"
        self.table = torch.from_numpy(subword_table(vocab.words, cfg.minn, cfg.maxn, cfg.buckets)) \
            if self.fasttext else None
        rows = v + cfg.buckets if self.fasttext else v
        gen = torch.Generator().manual_seed(cfg.seed)
        self.input = (torch.rand(rows, d, generator=gen) - 0.5) / d
        self.output = torch.zeros(v - 1 if cfg.loss == "hs" else v, d)
        self.keep = keep_probability(vocab.counts, cfg.sample)
        self.noise = NoiseSampler(vocab.counts, cfg.noise_power) if cfg.loss == "ns" else None
        if cfg.loss == "hs":
            points, codes = huffman_paths(vocab.counts)
            self.points, self.codes = torch.from_numpy(points), torch.from_numpy(codes)

    # ---- state
    def state(self) -> dict[str, torch.Tensor]:
        return {"input": self.input, "output": self.output}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, t in tensors.items():
            getattr(self, name).copy_(t)

    # ---- training
    def train_chunk(self, ids: np.ndarray, doc: np.ndarray, rng: np.random.Generator,
                    lr_at: Callable[[float], float]) -> tuple[float, int]:
        """Train on one chunk; ``lr_at(f)`` is the learning rate a fraction ``f`` into the
        chunk. Returns (summed loss, number of predictions)."""
        cfg = self.cfg
        kept = subsample(ids, self.keep, rng)
        ids, doc = ids[kept].astype(np.int64), doc[kept]
        if cfg.arch == "sg" and self.fasttext:
            # fastText's skip-gram: the centre's n-grams predict each context word; grouped by
            # centre, so the centre's input vector is gathered once for its whole window
            contexts, centres = cbow_contexts(ids, doc, cfg.window, rng)
            inputs, outputs, per = centres[:, None], contexts, max(1, cfg.batch // (cfg.window + 1))
        elif cfg.arch == "sg":
            inputs, outputs = skipgram_pairs(ids, doc, cfg.window, rng)
            inputs, outputs, per = inputs[:, None], outputs[:, None], cfg.batch
        else:
            inputs, outputs = cbow_contexts(ids, doc, cfg.window, rng)
            outputs, per = outputs[:, None], cfg.batch
        n = len(outputs)
        if n == 0:
            return 0.0, 0
        order = rng.permutation(n)
        inputs, outputs = torch.from_numpy(inputs[order]), torch.from_numpy(outputs[order])
        negs = None
        if self.noise is not None and cfg.shared_negatives:
            negs = torch.from_numpy(self.noise.sample(rng, (-(-n // per), cfg.shared_negatives)))
        elif self.noise is not None:
            negs = torch.from_numpy(self.noise.sample(rng, (*outputs.shape, cfg.negative)))
        total = 0.0
        for s, a in enumerate(range(0, n, per)):
            b = min(a + per, n)
            if cfg.shared_negatives and negs is not None:
                total += self.step_shared(inputs[a:b], outputs[a:b], negs[s], lr_at(a / n))
            else:
                total += self.step(inputs[a:b], outputs[a:b], None if negs is None else negs[a:b], lr_at(a / n))
        return total, int((outputs >= 0).sum())

    def _rows(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.fasttext:
            return inputs
        sub = self.table[inputs.clamp(min=0)]  # (B, M, S)
        return torch.where((inputs >= 0)[..., None], sub, -1).flatten(1)

    def step_shared(self, inputs: torch.Tensor, outputs: torch.Tensor, noise: torch.Tensor, lr: float) -> float:
        """One update with ``noise`` (K,) negatives shared by the whole batch, each weighted
        negative / K: the same expected gradient as ``negative`` noise words per pair, with the
        noise part done as two matrix products (see ``StaticConfig.shared_negatives``)."""
        return _sgd_shared(self.input, self.output, self._rows(inputs), outputs, noise,
                           self.cfg.negative / len(noise), lr)

    def step(self, inputs: torch.Tensor, outputs: torch.Tensor, negs: torch.Tensor | None, lr: float) -> float:
        """One vectorised SGD update. ``inputs`` (B, M) word ids whose rows are averaged,
        ``outputs`` (B, P) the words they predict (-1: none), ``negs`` (B, P, negative)."""
        rows = self._rows(inputs)
        b, p = outputs.shape
        present = outputs >= 0
        if negs is not None:
            targets = torch.cat([outputs[..., None], negs], 2)  # (B, P, 1 + negative)
            labels = torch.zeros(targets.shape, dtype=torch.float32)
            labels[..., 0] = 1.0
            mask = torch.ones(targets.shape, dtype=torch.float32)
            mask[..., 1:] = (negs != outputs[..., None]).float()
        else:
            out = outputs.clamp(min=0)
            targets, labels = self.points[out], 1.0 - self.codes[out].float()
            mask = (targets >= 0).float()
        mask = mask * present[..., None].float()
        return _sgd(self.input, self.output, rows, targets.clamp(min=0).view(b, -1), labels.view(b, -1),
                    mask.view(b, -1), lr)

    # ---- vectors
    def word_vectors(self) -> np.ndarray:
        """(V, dim) the vector of every vocabulary word."""
        if not self.fasttext:
            return self.input[:len(self.vocab)].numpy().copy()
        return _mean_rows(self.input, self.table).numpy()

    def ngram_vectors(self) -> np.ndarray:
        """fastText: (buckets, dim) n-gram bucket rows."""
        return self.input[len(self.vocab):].numpy().copy()


def _mean_rows(weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    valid = (rows >= 0).float()
    picked = weight.index_select(0, rows.clamp(min=0).reshape(-1)).view(*rows.shape, weight.shape[1])
    vec = (picked * valid[..., None]).sum(-2)
    return vec / valid.sum(-1, keepdim=True).clamp(min=1)


def _sgd(win: torch.Tensor, wout: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor,
         labels: torch.Tensor, mask: torch.Tensor, lr: float) -> float:
    d = win.shape[1]
    if rows.shape[1] == 1:
        flat_rows = rows[:, 0]
        h = win.index_select(0, flat_rows)
        valid = None
    else:
        valid = rows >= 0
        h = _mean_rows(win, rows)
    b, k = targets.shape
    u = wout.index_select(0, targets.reshape(-1)).view(b, k, d)
    s = (u * h[:, None, :]).sum(-1)
    loss = -(torch.nn.functional.logsigmoid(torch.where(labels > 0, s, -s)) * mask).sum()
    g = (labels - torch.sigmoid(s)) * mask * lr
    grad_h = torch.bmm(g[:, None, :], u).squeeze(1)
    wout.index_add_(0, targets.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, d))
    if valid is None:
        win.index_add_(0, flat_rows, grad_h)
    else:
        b, m = rows.shape
        win.index_add_(0, rows[valid], grad_h[:, None, :].expand(b, m, d)[valid])
    return float(loss)


def _input_vectors(win: torch.Tensor, rows: torch.Tensor):
    if rows.shape[1] == 1:
        return win.index_select(0, rows[:, 0]), None
    return _mean_rows(win, rows), rows >= 0


def _scatter_input(win: torch.Tensor, rows: torch.Tensor, valid, grad_h: torch.Tensor) -> None:
    if valid is None:
        win.index_add_(0, rows[:, 0], grad_h)
    else:
        b, m = rows.shape
        win.index_add_(0, rows[valid], grad_h[:, None, :].expand(b, m, grad_h.shape[1])[valid])


def _sgd_shared(win: torch.Tensor, wout: torch.Tensor, rows: torch.Tensor, outputs: torch.Tensor,
                noise: torch.Tensor, weight: float, lr: float) -> float:
    d = win.shape[1]
    h, valid = _input_vectors(win, rows)
    b, p = outputs.shape
    present = outputs >= 0
    pos = outputs.clamp(min=0)
    u = wout.index_select(0, pos.reshape(-1)).view(b, p, d)
    s = (u * h[:, None, :]).sum(-1)
    mask = present.float()
    # pairs x noise words, a noise word equal to the pair's positive skipped (as in word2vec)
    pairs = ((noise[None, None, :] != outputs[..., None]) & present[..., None]).sum(1).float()  # (B, K)
    nrows = wout.index_select(0, noise)  # (K, d)
    sn = h @ nrows.T  # (B, K)
    loss = -(torch.nn.functional.logsigmoid(s) * mask).sum() - weight * (
        pairs * torch.nn.functional.logsigmoid(-sn)).sum()
    g = (1.0 - torch.sigmoid(s)) * mask * lr
    gn = -torch.sigmoid(sn) * pairs * (weight * lr)
    grad_h = torch.bmm(g[:, None, :], u).squeeze(1) + gn @ nrows
    wout.index_add_(0, pos.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, d))
    wout.index_add_(0, noise, gn.T @ h)
    _scatter_input(win, rows, valid, grad_h)
    return float(loss)


def oov_vector(word: str, ngrams: np.ndarray, cfg: StaticConfig) -> np.ndarray:
    """fastText's vector for a word outside the vocabulary: the mean of its n-gram rows."""
    idx = ngram_buckets(word, cfg.minn, cfg.maxn, cfg.buckets)
    if not idx:
        return np.zeros(ngrams.shape[1], dtype=np.float32)
    return ngrams[idx].mean(0)
