"""Language-model evaluation on held-out text: masked-LM loss, perplexity and
accuracy (with a fixed masking seed), or causal-LM loss and perplexity.

The text is prepared with the model's own tokenizer into packed windows,
exactly as pre-training data is, and every window is scored once."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from sesame.config import DataConfig, get
from sesame.data import Corpus, build_dataset, prepare
from sesame.errors import ConfigError
from sesame.objectives import Vocab
from sesame.objectives.base import TokenModule
from sesame.pipelines import load_any


def evaluate_lm(model_dir: str | Path, inputs: list[str], seq_len: int | None = None, batch_size: int = 32,
                seed: int = 0, objective: str | None = None, progress: bool = False,
                doc_boundary: str = "auto") -> dict:
    """Loss per target token, perplexity and accuracy of the model in ``model_dir`` on ``inputs``;
    ``doc_boundary`` as in ``[data]`` (``file``: a whole book is one document, so a causal
    window reaches across its blank lines)."""
    model, tok, _ = load_any(model_dir)
    cfg = model.config
    name = objective or {"decoder": "clm", "bilm": "bilm"}.get(cfg.arch, "mlm")
    if name not in ("mlm", "clm", "bilm") or (name == "bilm") != (cfg.arch == "bilm"):
        raise ConfigError(f"evaluate_lm scores 'mlm' or 'clm' (Transformers) or 'bilm' (ELMo), got {name!r} for a "
                          f"model of arch {cfg.arch!r}")
    seq_len = seq_len or (64 if name == "bilm" else min(cfg.max_positions, 512))
    task = get("objective", name)(Vocab.from_tokenizer(tok))
    head = {"mlm": "mlm", "clm": "lm", "bilm": "bilm"}[name]
    if head not in model.heads:
        raise ConfigError(f"{model_dir} has no trained `{head}` head, so it cannot be scored as {name}")
    if name == "bilm":  # forward and backward next-token losses, full softmax (eval mode)
        from sesame.objectives.bilm import BiLMModule

        module = BiLMModule(model, task.opts).eval()
    else:
        for block in model.body.layers:
            block.attn.kernel.check(set(task.needs))
    with tempfile.TemporaryDirectory() as tmp:
        data = DataConfig(seq_len=seq_len, doc_boundary=doc_boundary)
        prepare(list(inputs), tok, Path(tmp) / "corpus", data, progress=progress)
        corpus = Corpus(Path(tmp) / "corpus")
        dataset = build_dataset(corpus, data)
        if name != "bilm":  # packed windows keep causal attention inside each document (one: nothing to keep)
            module = TokenModule(model, head, documents=name == "clm" and corpus.num_docs > 1).eval()
        loss = count = correct = 0.0
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = [dataset.example(i) for i in range(start, min(start + batch_size, len(dataset)))]
                raw = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
                batch = task.transform(raw, np.random.default_rng([seed, start]))
                if task.count(batch) == 0:
                    continue
                out = module(batch)
                loss += float(out.loss)
                count += float(out.count)
                correct += float(out.metrics["accuracy"][0])
        tokens = corpus.num_tokens
    mean = loss / max(count, 1)
    return {"objective": name, "windows": len(dataset), "tokens": int(tokens), "targets": int(count),
            "loss": mean, "perplexity": math.exp(min(mean, 50)), "accuracy": correct / max(count, 1)}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n; ties share their average rank."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), dtype=float)
    r[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inv, weights=r) / counts)[inv]


def spearman(a, b) -> float:
    """Spearman's rank correlation (ties averaged)."""
    return float(np.corrcoef(_ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float)))[0, 1])


def similarity(model_dir, pairs: list[tuple[str, str]], gold, pooling: str = "mean", batch_size: int = 64) -> dict:
    """Sentence similarity: the cosine of each pair's ``feature-extraction`` vectors against
    the gold scores (or 0/1 labels), as Spearman's correlation; ``model_dir`` may also be a
    loaded ``(model, tokenizer)``."""
    from sesame.pipelines import FeatureExtraction

    model, tok = model_dir if isinstance(model_dir, tuple) else load_any(model_dir)[:2]
    embed = FeatureExtraction(model.eval(), tok)
    cos = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        a = embed([p[0] for p in chunk], pooling=pooling, normalize=True)
        b = embed([p[1] for p in chunk], pooling=pooling, normalize=True)
        cos.append((a * b).sum(-1))
    scores = torch.cat(cos).numpy()
    return {"spearman": spearman(scores, gold), "pairs": len(pairs), "pooling": pooling}
