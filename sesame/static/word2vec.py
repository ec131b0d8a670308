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
from sesame.static.sampling import (NoiseSampler, cbow_contexts, gather_ragged, keep_probability, ragged,
                                    skipgram_pairs, subsample)
from sesame.static.subwords import ngram_buckets, subword_table


class Word2Vec:
    """Parameters and the update step of one word2vec / fastText run."""

    def __init__(self, cfg: StaticConfig, vocab: Vocab):
        self.cfg, self.vocab = cfg, vocab
        v, d = len(vocab), cfg.dim
        self.fasttext = cfg.method == "fasttext"
        self.table = torch.from_numpy(subword_table(vocab.words, cfg.minn, cfg.maxn, cfg.buckets)) \
            if self.fasttext else None
        self.sub = ragged(self.table.numpy()) if self.fasttext else None  # (rows, offsets) per word
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
        if cfg.shared_negatives:
            return self._train_shared(ids, doc, rng, lr_at)
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
        if self.noise is not None:
            negs = torch.from_numpy(self.noise.sample(rng, (*outputs.shape, cfg.negative)))
        total = 0.0
        for a in range(0, n, per):
            b = min(a + per, n)
            total += self.step(inputs[a:b], outputs[a:b], None if negs is None else negs[a:b], lr_at(a / n))
        return total, int((outputs >= 0).sum())

    def _train_shared(self, ids: np.ndarray, doc: np.ndarray, rng: np.random.Generator,
                      lr_at: Callable[[float], float]) -> tuple[float, int]:
        """``shared_negatives``: examples as ragged rows (no padding), K noise words per batch."""
        cfg = self.cfg
        x = xr = outs = None  # inputs: x[i], or ragged row i of xr; outputs: y[i], or ragged row i of outs
        if cfg.arch == "sg" and not self.fasttext:
            x, y = skipgram_pairs(ids, doc, cfg.window, rng)
        elif cfg.arch == "sg":  # fastText skip-gram: the centre's rows predict each of its contexts
            ctx, x = cbow_contexts(ids, doc, cfg.window, rng)
            outs = ragged(ctx)
        else:  # CBOW: the contexts (fastText: with their n-grams) predict the centre
            ctx, y = cbow_contexts(ids, doc, cfg.window, rng)
            xr = ragged(ctx)
        n = len(y) if outs is None else len(x)
        if n == 0:
            return 0.0, 0
        order = rng.permutation(n)
        per = cfg.batch if outs is None else max(1, cfg.batch // (cfg.window + 1))
        noise = torch.from_numpy(self.noise.sample(rng, (-(-n // per), cfg.shared_negatives)))
        weight = cfg.negative / cfg.shared_negatives
        ins, outs = _InOrder(x, xr, order), _InOrder(y if outs is None else None, outs, order)
        total, predictions = 0.0, 0
        for s, a in enumerate(range(0, n, per)):
            b = min(a + per, n)
            out = outs.bags(a, b)
            predictions += len(out[0])
            total += _sgd_ragged(self.input, self.output, b - a, ins.bags(a, b, self.sub), out, noise[s], weight,
                                 lr_at(a / n))
        return total, predictions

    def _rows(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.fasttext:
            return inputs
        sub = self.table[inputs.clamp(min=0)]  # (B, M, S)
        return torch.where((inputs >= 0)[..., None], sub, -1).flatten(1)

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


class _InOrder:
    """One side of a chunk's examples, gathered once in training order: a word per example
    (``words``), or a ragged row of words per example (``table`` = (values, offsets))."""

    def __init__(self, words: np.ndarray | None, table, order: np.ndarray):
        if table is None:
            self.values, self.seg = words[order], None
        else:
            self.values, self.seg = gather_ragged(table[0], table[1], order)
            lens = table[1][order + 1] - table[1][order]
            self.starts = np.concatenate([[0], np.cumsum(lens)])

    def bags(self, a: int, b: int, sub=None):
        """Examples a..b-1 as (rows, the example of each row or None, each example's first
        position), as ``_sgd_ragged`` reads them; ``sub`` (fastText) expands every word into
        its own row and its n-gram rows."""
        if self.seg is None:
            words, seg = self.values[a:b], None
        else:
            p, q = self.starts[a], self.starts[b]
            words, seg = self.values[p:q], self.seg[p:q] - a
        if sub is None:
            if seg is None:
                return torch.from_numpy(words), None, None
            return torch.from_numpy(words), torch.from_numpy(seg), torch.from_numpy(self.starts[a:b] - p)
        words, inner = gather_ragged(sub[0], sub[1], words)
        seg = inner if seg is None else seg[inner]
        counts = np.bincount(seg, minlength=b - a)
        return torch.from_numpy(words), torch.from_numpy(seg), torch.from_numpy(np.cumsum(counts) - counts)


def _segment_sum(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Sums of the consecutive row segments of ``x`` starting at ``offsets`` (one fused kernel)."""
    return torch.nn.functional.embedding_bag(torch.arange(len(x)), x, offsets, mode="sum")


def _sgd_ragged(win: torch.Tensor, wout: torch.Tensor, b: int, ins, outs, noise: torch.Tensor,
                weight: float, lr: float) -> float:
    """One update of ``b`` examples with noise words ``noise`` (K,) shared by the batch, each
    weighted ``weight`` (negative / K): the same expected gradient as ``negative`` noise
    words per prediction, with the noise part done as matrix products.

    ``ins`` and ``outs`` are ``_InOrder.bags`` (rows, segment, offsets): example i's input vector is
    the mean of its input rows (segment None: row i alone), and it predicts each of its
    output rows. A noise word equal to the word predicted is skipped, as in word2vec; every
    input row receives the full error, as in word2vec and fastText."""
    in_rows, in_seg, in_off = ins
    out_rows, out_seg, out_off = outs
    if in_seg is None:
        h = win.index_select(0, in_rows)
    else:
        h = torch.nn.functional.embedding_bag(in_rows, win, in_off, mode="mean")
    if out_seg is None:
        hp, pairs = h, (out_rows[:, None] != noise[None, :]).to(win.dtype)  # (B, K) predictions per noise word
    else:
        hp = h.index_select(0, out_seg)
        pairs = _segment_sum((out_rows[:, None] != noise[None, :]).to(win.dtype), out_off)
    up = wout.index_select(0, out_rows)
    nrows = wout.index_select(0, noise)  # (K, d)
    sp = (hp * up).sum(1)
    sn = h @ nrows.T  # (B, K)
    loss = -torch.nn.functional.logsigmoid(sp).sum() - weight * (pairs * torch.nn.functional.logsigmoid(-sn)).sum()
    gp = (1.0 - torch.sigmoid(sp)).mul_(lr)
    gn = torch.sigmoid(sn).mul_(pairs).mul_(-weight * lr)
    gup = up.mul_(gp[:, None])
    grad_h = torch.addmm(gup if out_seg is None else _segment_sum(gup, out_off), gn, nrows)
    wout.index_add_(0, out_rows, hp * gp[:, None])
    wout.index_add_(0, noise, gn.T @ h)
    win.index_add_(0, in_rows, grad_h if in_seg is None else grad_h.index_select(0, in_seg))
    return float(loss)


def oov_vector(word: str, ngrams: np.ndarray, cfg: StaticConfig) -> np.ndarray:
    """fastText's vector for a word outside the vocabulary: the mean of its n-gram rows."""
    idx = ngram_buckets(word, cfg.minn, cfg.maxn, cfg.buckets)
    if not idx:
        return np.zeros(ngrams.shape[1], dtype=np.float32)
    return ngrams[idx].mean(0)
