"""Ready-made inference: ``sesame.pipeline(task, model_dir)``.

``model_dir`` is a sesame model directory (``config.toml`` + weights, e.g. a
run's ``model/``) or a Hugging Face directory (``config.json`` +
safetensors), converted in memory. The tokenizer comes from the same folder.
Fine-tuned classifiers and taggers keep their label names in ``labels.json``
(HF directories: ``id2label`` in ``config.json``)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from sesame.config.base import closest
from sesame.errors import CheckpointError, ConfigError, SesameError
from sesame.generate import GenerateConfig, generate
from sesame.models import Model, load_model
from sesame.models.io import check_vocab
from sesame.models.quantize import convert_weights
from sesame.tokenize import Tokenizer, load_tokenizer

LABELS = "labels.json"
TASKS = ("fill-mask", "feature-extraction", "text-generation", "text-classification",
         "token-classification", "question-answering", "translation")


def load_any(model_dir: str | Path, weights: str = "fp32") -> tuple[Model, Tokenizer, list[str]]:
    """(model, tokenizer, labels) from a sesame or Hugging Face directory, the model in eval
    mode with its weights in the ``weights`` format (fp32, bf16, int8; see models.quantize)."""
    path = Path(model_dir)
    if not path.is_dir():
        raise CheckpointError(f"model directory {str(path)!r} does not exist")
    tok_path = path
    if (path / "config.toml").is_file():
        model, _ = load_model(path)
    elif (path / "state.json").is_file():  # a training checkpoint: runs/NAME/checkpoints/step-N
        from sesame.runs import checkpoint_model

        model, tok_path = checkpoint_model(path)
    elif (path / "config.json").is_file():
        from sesame.models.hf import from_hf

        model, _ = from_hf(path)
    else:
        raise CheckpointError(f"{str(path)!r} holds neither config.toml (sesame), a training checkpoint's "
                              "state.json, nor config.json (Hugging Face)")
    tokenizer = load_tokenizer(tok_path)
    check_vocab(model.config, tokenizer.vocab_size, tokenizer.special_ids, str(path),
                pad=(path / "config.toml").is_file() or (path / "state.json").is_file())
    labels: list[str] = []
    if (path / LABELS).is_file():
        labels = json.loads((path / LABELS).read_text())
    elif (path / "config.json").is_file():
        id2label = json.loads((path / "config.json").read_text()).get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=int)]
    convert_weights(model, weights)
    return model, tokenizer, labels


class Pipeline:
    task = ""

    def __init__(self, model: Model, tokenizer: Tokenizer, labels: Sequence[str] = ()):
        self.model, self.tokenizer, self.labels = model, tokenizer, list(labels)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """[CLS] text [SEP] rows, right-padded, truncated to the position table."""
        limit = self.model.config.max_positions
        rows = []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise SesameError(f"{self.task}: got an empty or non-text input {text!r}")
            ids, _ = self.tokenizer.build_inputs(self.tokenizer.encode(text).ids)
            if len(ids) > limit:
                raise SesameError(f"{self.task}: a text of {len(ids)} tokens is longer than the model's {limit}")
            rows.append(ids)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": mask}


def _listify(inputs) -> tuple[list, bool]:
    return ([inputs], True) if isinstance(inputs, (str, dict)) else (list(inputs), False)


class FillMask(Pipeline):
    task = "fill-mask"

    def __call__(self, texts: str | Sequence[str], top_k: int = 5) -> list:
        """For each text, for each mask: the ``top_k`` fillers with probabilities."""
        texts, single = _listify(texts)
        if "mlm" not in self.model.heads:
            raise ConfigError("fill-mask needs a model with an `mlm` head (a pre-trained masked LM)")
        mask_token = self.tokenizer.id_to_token(self.tokenizer.mask_id) if self.tokenizer.mask_id is not None else None
        if mask_token is None:
            raise ConfigError("fill-mask needs a tokenizer with a mask token")
        batch = self.encode(texts)
        masked = batch["input_ids"] == self.tokenizer.mask_id
        if not masked.any(1).all():
            raise SesameError(f"fill-mask: every text needs a {mask_token} token")
        with torch.no_grad():
            logits = self.model(batch["input_ids"], batch["attention_mask"]).logits["mlm"]
        results = []
        for row in range(len(texts)):
            per_mask = []
            for pos in masked[row].nonzero().flatten().tolist():
                probs = logits[row, pos].float().softmax(-1)
                top = probs.topk(top_k)
                per_mask.append([{"token": self.tokenizer.id_to_token(i), "id": i, "score": p}
                                 for p, i in zip(top.values.tolist(), top.indices.tolist())])
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results[0] if single else results


class FeatureExtraction(Pipeline):
    task = "feature-extraction"

    def __call__(self, texts: str | Sequence[str], pooling: str = "mean", normalize: bool = False) -> torch.Tensor:
        """(N, hidden) sentence vectors: ``mean`` over real tokens or the ``cls`` token."""
        texts, single = _listify(texts)
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        batch = self.encode(texts)
        with torch.no_grad():
            hidden = self.model(batch["input_ids"], batch["attention_mask"]).hidden.float()
        if pooling == "cls":
            out = hidden[:, 0]
        else:
            mask = batch["attention_mask"][..., None].float()
            out = (hidden * mask).sum(1) / mask.sum(1)
        if normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out[0] if single else out


class TextGeneration(Pipeline):
    task = "text-generation"

    def __call__(self, prompts: str | Sequence[str], **options) -> list[str] | str:
        prompts, single = _listify(prompts)
        tok = self.tokenizer
        stops = [i for i in (tok.eos_id,) if i is not None]
        options.setdefault("stop_ids", stops)
        config = GenerateConfig().replace(**options)
        rows = [tok.encode(p).ids for p in prompts]
        if any(not r for r in rows):
            raise SesameError("text-generation: a prompt encodes to no tokens")
        width = max(len(r) for r in rows)
        pad = tok.pad_id if tok.pad_id is not None else (stops[0] if stops else 0)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        out = generate(self.model, ids, mask, config, pad_id=pad)
        texts = [tok.decode([t for t in new if t not in stops]) for new in out.new_tokens]
        return texts[0] if single else texts


class _TaskPipeline(Pipeline):
    """Pipelines that run a downstream task's own prediction code."""

    task_name = ""

    def __init__(self, model, tokenizer, labels=()):
        super().__init__(model, tokenizer, labels)
        from sesame.config import get

        if self.needs_labels and not self.labels:
            self.labels = [f"LABEL_{i}" for i in range(model.config.num_labels)]
        self.runner = get("task", self.task_name)(tokenizer, self.labels or None)
        self.module = self.runner.wrap(model)

    needs_labels = True


class TextClassification(_TaskPipeline):
    task, task_name = "text-classification", "classification"

    def __call__(self, texts, top_k: int = 1):
        """Texts (or (text, text_b) pairs) -> [{label, score}] best first."""
        from sesame.tasks import TextExample

        texts, single = _listify(texts)
        examples = [TextExample(*t) if isinstance(t, (tuple, list)) else TextExample(t) for t in texts]
        probs = self.runner.predict(self.module, examples).softmax(-1)
        out = []
        for row in probs:
            top = row.topk(min(top_k, len(row)))
            best = zip(top.values.tolist(), top.indices.tolist())
            out.append([{"label": self.labels[i], "score": p} for p, i in best])
        return out[0] if single else out


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Words with character spans: CJK characters one by one, other runs by spaces/punctuation."""
    return [(m.group(), m.start(), m.end())
            for m in re.finditer(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+", text)]


class TokenClassification(_TaskPipeline):
    task, task_name = "token-classification", "tagging"

    def __call__(self, texts):
        """Texts -> entities [{entity, text, start, end}] from the predicted BIO tags."""
        from sesame.tasks import TagExample
        from sesame.tasks.metrics import chunks

        texts, single = _listify(texts)
        words = [split_words(t) for t in texts]
        tags, _ = self.runner.predict(self.module, [TagExample([w for w, _, _ in ws]) for ws in words])
        out = []
        for text, ws, row in zip(texts, words, tags):
            ents = []
            for kind, a, b in chunks(row):
                start, end = ws[a][1], ws[b - 1][2]
                ents.append({"entity": kind, "text": text[start:end], "start": start, "end": end})
            out.append(ents)
        return out[0] if single else out


class QuestionAnswering(_TaskPipeline):
    task, task_name = "question-answering", "qa"
    needs_labels = False

    def __call__(self, question: str | Sequence[dict], context: str | None = None):
        """``(question, context)`` or a list of {question, context} -> answer text(s)."""
        from sesame.tasks import QAExample

        items = [{"question": question, "context": context}] if isinstance(question, str) else list(question)
        examples = [QAExample(str(i), it["question"], it["context"]) for i, it in enumerate(items)]
        answers = self.runner.predict(self.module, examples)
        out = [answers[ex.id] for ex in examples]
        return out[0] if isinstance(question, str) else out


class Translation(_TaskPipeline):
    task, task_name = "translation", "seq2seq"
    needs_labels = False

    def __call__(self, texts):
        from sesame.tasks import PairExample

        texts, single = _listify(texts)
        out = self.runner.predict(self.module, [PairExample(t) for t in texts])
        return out[0] if single else out


PIPELINES = {cls.task: cls for cls in (FillMask, FeatureExtraction, TextGeneration, TextClassification,
                                       TokenClassification, QuestionAnswering, Translation)}


def pipeline(task: str, model_dir: str | Path, weights: str = "fp32") -> Any:
    """A callable for ``task`` over the model in ``model_dir``; ``weights = "bf16"`` or
    ``"int8"`` trades a little precision for speed (decoding on a CPU is 2-4x faster)."""
    if task not in PIPELINES:
        raise ConfigError(f"unknown pipeline {task!r}{closest(task, PIPELINES)}; pipelines: {', '.join(PIPELINES)}")
    model, tokenizer, labels = load_any(model_dir, weights)
    return PIPELINES[task](model, tokenizer, labels)
