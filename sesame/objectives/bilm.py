"""ELMo's biLM objective (Peters et al. 2018, eq. in sec. 3.1): the forward LSTM predicts
each next token, the backward LSTM each previous token, and the loss is the sum of both
log-likelihoods over one softmax shared by the directions (the ``bilm`` head).

Windows may pack several documents: no token is asked to predict across a document
boundary (the LSTM state does run across it, as ELMo's training carried state between
sentences). ``softmax = "sampled"`` scores each batch against the targets plus
``samples`` classes drawn uniformly without replacement (Jean et al. 2015), each logit
corrected by the log of its inclusion probability; with every class drawn it equals the
full softmax exactly. Evaluation (the trainer's held-out loss) always uses the full
softmax, so perplexities are comparable.

``prior = "unigram"`` (the default) starts the softmax bias at the log unigram frequencies
of the first training batches (``fit_prior``, called by pre-training before the model is
built). Ours, not in Peters et al.: from a zero bias, Adam moves each bias by at most about
the learning rate a step, so at a CPU budget the log frequencies (spread over ~10 nats)
were learned through the LSTM states instead, as one direction shared by every token, and
the biLM stayed at the unigram plateau (docs/elmo.md)."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section, choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives.base import IGNORE, TokenObjective, Vocab, to_tensors
from sesame.objectives.clm import next_token_labels
from sesame.task import TaskOutput


@dataclasses.dataclass
class BiLMOptions(Section):
    softmax: str = "full"  # full | sampled
    samples: int = 8192  # sampled: classes drawn per batch (besides the targets)
    within_documents: bool = True  # no prediction across a document boundary
    prior: str = "unigram"  # unigram | zero: the softmax bias's start (module docstring)
    prior_batches: int = 64  # unigram: training batches counted

    def validate(self) -> None:
        choice("objective.options.softmax", self.softmax, ("full", "sampled"))
        choice("objective.options.prior", self.prior, ("unigram", "zero"))
        if self.prior_batches <= 0:
            raise ConfigError("objective.options.prior_batches must be positive")
        if self.samples <= 0:
            raise ConfigError("objective.options.samples must be positive")


def previous_token_labels(ids: np.ndarray, attention_mask=None, doc_ids=None) -> np.ndarray:
    """labels[:, t] = ids[:, t - 1] (the backward direction's target), -100 where undefined."""
    flip = lambda a: None if a is None else np.asarray(a)[:, ::-1]  # noqa: E731
    return np.ascontiguousarray(next_token_labels(flip(ids), flip(attention_mask), flip(doc_ids))[:, ::-1])


def sampled_loss(head, states: torch.Tensor, targets: torch.Tensor, samples: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Summed sampled-softmax cross-entropy of (N, d) ``states`` against ``targets`` (N,):
    the classes are the distinct targets plus ``samples`` drawn uniformly without replacement
    from the rest; each logit gets ``- log P(class in the set)`` (1 for the targets), and
    each row's own target is the one positive."""
    vocab = head.decoder.out_features
    classes = torch.unique(targets)
    rest = torch.ones(vocab, dtype=torch.bool, device=targets.device)
    rest[classes] = False
    others = rest.nonzero().squeeze(-1)
    k = min(samples, others.numel())
    drawn = others[torch.randperm(others.numel(), generator=generator, device="cpu")[:k].to(others.device)]
    every = torch.cat([classes, drawn])
    logits = head.sampled(states, every).float()
    if k:
        logits[:, classes.numel():] -= float(np.log(k / others.numel()))
    index = torch.searchsorted(classes, targets)
    return F.cross_entropy(logits, index, reduction="sum")


class BiLMModule(nn.Module):
    def __init__(self, model: nn.Module, opts: BiLMOptions):
        super().__init__()
        self.model, self.opts = model, opts

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        hidden = self.model.body(batch["input_ids"], batch.get("attention_mask"))
        half = hidden.shape[-1] // 2
        head = self.model.heads["bilm"]
        total, count, correct, metrics_seen = None, 0, 0, []
        for states, labels in ((hidden[..., :half], batch["labels"]), (hidden[..., half:], batch["labels_back"])):
            keep = labels != IGNORE
            s, y = states[keep], labels[keep]
            if self.training and self.opts.softmax == "sampled":
                draw = torch.Generator().manual_seed(int(batch["seed"]) + len(metrics_seen))
                metrics_seen.append(1)
                loss = sampled_loss(head, s, y, self.opts.samples, draw)
            else:
                logits = head.logits(s).float()
                loss = F.cross_entropy(logits, y, reduction="sum")
                correct += int((logits.argmax(-1) == y).sum())
            total = loss if total is None else total + loss
            count += int(keep.sum())
        metrics = {} if self.training and self.opts.softmax == "sampled" else {"accuracy": (correct, count)}
        return TaskOutput(total, count, metrics)


@register("objective", "bilm")
class BiLM(TokenObjective):
    name = "bilm"
    archs = ("bilm",)
    heads = ("bilm",)
    composable = False
    Options = BiLMOptions

    def __init__(self, vocab: Vocab, opts: dict | None = None):
        super().__init__(vocab, opts)
        self.tokens = getattr(vocab, "tokens", ())
        self.log_prior: torch.Tensor | None = None

    def fit_prior(self, source) -> None:
        """With ``prior = "unigram"``: the add-one smoothed log frequencies of both directions'
        targets in the first ``prior_batches`` batches of ``source`` (a BatchSource), which
        ``build`` puts in the softmax bias. The source's epoch is left as it was."""
        if self.opts.prior != "unigram":
            return
        epoch = getattr(source, "epoch", None)
        per_epoch = getattr(source, "steps_per_epoch", self.opts.prior_batches)
        counts = torch.ones(self.vocab.size, dtype=torch.float64)
        for step in range(min(self.opts.prior_batches, per_epoch)):
            batch = self.transform(source.batch(step, 0, 1, 0, 1), np.random.default_rng(step))
            for labels in (batch["labels"], batch["labels_back"]):
                counts += torch.bincount(labels[labels != IGNORE], minlength=self.vocab.size)[: self.vocab.size]
        if epoch is not None:
            source.epoch = epoch
        self.log_prior = (counts / counts.sum()).log().float()

    def transform(self, batch, rng):
        ids = np.asarray(batch["input_ids"])
        mask = batch.get("attention_mask")
        docs = np.asarray(batch["doc_ids"]) if self.opts.within_documents and batch.get("doc_ids") is not None \
            else None
        out = {"input_ids": ids, "labels": next_token_labels(ids, mask, docs),
               "labels_back": previous_token_labels(ids, mask, docs),
               "seed": np.asarray(rng.integers(0, 2 ** 62))}  # the sampled softmax's draw, resumable
        if mask is not None:
            out["attention_mask"] = mask
        return to_tensors(out)

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum() + (batch["labels_back"] != IGNORE).sum())

    def build(self, model_config) -> nn.Module:
        if model_config.arch != "bilm":
            raise ConfigError(f"the bilm objective trains a biLSTM language model (model.arch = 'bilm', the elmo "
                              f"presets); the model is {model_config.arch!r}")
        self.vocab.check_model(model_config.vocab_size)
        heads = list(model_config.heads) if "bilm" in model_config.heads else [*model_config.heads, "bilm"]
        model = build_model(model_config.replace(heads=heads))
        if model_config.token_encoder == "char-cnn":
            if not self.tokens:
                raise ConfigError("the character CNN needs the tokenizer's token strings; build the bilm objective "
                                  "with Vocab.from_tokenizer(tokenizer)")
            model.body.embed.set_vocabulary(self.tokens)
        if self.log_prior is not None:
            bias = model.heads["bilm"].decoder.bias
            with torch.no_grad():
                bias.fill_(float(self.log_prior.min()))  # rows past the tokenizer: never seen
                bias[: self.log_prior.numel()] = self.log_prior.to(bias.device)
        return BiLMModule(model, self.opts)
