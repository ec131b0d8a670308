"""Distillation losses, each a SUM over rows (examples or tokens) so that a task's
``TaskOutput`` normalises them by its own target count, like every other loss.

- ``soft_kl``: Hinton's KL(teacher_T || student_T) scaled by T² (DistilBERT, task KD).
- ``soft_ce``: TinyBERT's prediction-layer soft cross-entropy −Σ p_T(t) log p_T(s).
- ``cosine``: DistilBERT's 1 − cos(h_s, h_t) between hidden vectors.
- ``mse``: TinyBERT's mean squared error (embeddings, hidden states, attention scores).
- ``relation_kl``: MiniLM's KL between self-attention distributions of the last layer.
- ``value_relation``: MiniLM's value relation softmax(V Vᵀ / √d) per head, whose KL
  ``relation_kl`` then takes.

``weights`` (rows): how much each row counts (e.g. its number of targets), so the sum of
per-row means stays exact under gradient accumulation."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Σ_rows T² · KL(softmax(t/T) || softmax(s/T)) over (N, C) logits."""
    t = temperature
    log_s = F.log_softmax(student.float() / t, -1)
    log_t = F.log_softmax(teacher.float() / t, -1)
    return (log_t.exp() * (log_t - log_s)).sum() * t * t


def soft_ce(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Σ_rows −Σ_c softmax(t/T)_c · log softmax(s/T)_c over (N, C) logits."""
    p_t = F.softmax(teacher.float() / temperature, -1)
    return -(p_t * F.log_softmax(student.float() / temperature, -1)).sum()


def _per_row(values: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Σ_rows weight_row · mean over the row's valid entries of ``values`` (B, T)."""
    valid = valid.to(values.dtype)
    mean = (values * valid).sum(-1) / valid.sum(-1).clamp(min=1)
    return (mean * (weights.to(values.dtype) if weights is not None else 1.0)).sum()


def cosine(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor,
           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_rows w · mean over valid tokens of 1 − cos(s, t); s, t (B, T, H), valid (B, T)."""
    cos = F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=1e-8)
    return _per_row(1.0 - cos, valid, weights)


def mse(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor,
        weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_rows w · mean over valid tokens and features of (s − t)²; s, t (B, T, ...)."""
    sq = (student.float() - teacher.float()).pow(2).flatten(2).mean(-1)
    return _per_row(sq, valid, weights)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, pad: torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """TinyBERT's attention loss on (B, H, T, T) pre-softmax scores: MSE over the
    query-key pairs of real tokens (masked scores are -inf and are left out)."""
    pair = (pad[:, :, None] & pad[:, None, :])[:, None]  # (B, 1, T, T)
    zero = torch.zeros((), dtype=torch.float32, device=student.device)
    diff = torch.where(pair, student.float() - teacher.float(), zero).pow(2)
    per = diff.sum((1, 2, 3)) / (pair.sum((1, 2, 3)) * student.shape[1]).clamp(min=1)
    return (per * (weights.float() if weights is not None else 1.0)).sum()


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, pad: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM's self-attention distribution transfer: mean over heads and real query
    tokens of KL(A_t || A_s) on (B, H, T, T) attention probabilities (same head count)."""
    s = student.float().clamp(min=1e-12).log()
    t = teacher.float()
    kl = (t * (t.clamp(min=1e-12).log() - s)).sum(-1).mean(1)  # (B, T)
    return _per_row(kl, pad, weights)


def value_relation(values: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """MiniLM's value relation of (B, H, T, D) value vectors: softmax over the real keys of
    V Vᵀ / √D, (B, H, T, T); padded keys get probability 0."""
    v = values.float()
    scores = v @ v.transpose(-1, -2) / v.shape[-1] ** 0.5
    scores = scores.masked_fill(~pad[:, None, None, :], float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0)
