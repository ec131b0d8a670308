"""Ready-made inference: ``sesame.pipeline(task, model_dir)``.

``model_dir`` is a sesame model directory (``config.toml`` + weights, e.g. a
run's ``model/``) or a Hugging Face directory (``config.json`` +
safetensors), converted in memory. The tokenizer comes from the same folder.
Fine-tuned classifiers and taggers keep their label names in ``labels.json``
(HF directories: ``id2label`` in ``config.json``).

One long-input policy everywhere: an input longer than the model takes (its position
table, or the ``max_length`` it was fine-tuned with, from ``finetune.json``) is cut by
``truncation`` (``head``, the default everywhere; ``tail``; ``head+tail``), and each
pipeline counts what it cut in ``pipe.truncated``. ``feature-extraction`` and
``text-classification`` can instead read a long text in windows that overlap by half
(``truncation="window"``): embed averages the windows' vectors (weighted by their tokens),
classify averages the windows' class probabilities (each window counts once); a text that
fits in one window gets exactly the unwindowed result. ``device``: ``cpu``, ``cuda`` or
``auto`` (CUDA when there is one)."""
from __future__ import annotations

import dataclasses
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
WINDOWED = ("feature-extraction", "text-classification")  # the pipelines that take truncation="window"
TASKS = ("fill-mask", "feature-extraction", "text-generation", "text-classification",
         "token-classification", "question-answering", "translation")


def load_any(model_dir: str | Path, weights: str = "fp32") -> tuple[Model, Tokenizer, list[str]]:
    """(model, tokenizer, labels) from a sesame or Hugging Face directory, the model in eval
    mode with its weights in the ``weights`` format (fp32, bf16, int8; see models.quantize)."""
    path = Path(model_dir)
    from sesame.static_model import is_vectors, static_model

    if is_vectors(path):  # word vectors: the static-feature baseline
        model, tokenizer = static_model(path)
        convert_weights(model, weights)
        return model, tokenizer, []
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
    tokenizer = load_tokenizer(tok_path, xlnet=model.config.family == "xlnet")  # an HF XLNet's spiece.model
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; asking for CUDA without it is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this machine has no CUDA device (torch "
                          f"{torch.__version__}); use device='cpu' or 'auto'")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {name!r}")
    return torch.device(name)


def check_texts(texts: Sequence, task: str) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise SesameError(f"{task}: input {i + 1} is empty or not text ({text!r}); give non-empty texts")


def default_length(model: Model, record: dict | None = None) -> int:
    """The longest input a model takes: its fine-tuned max_length, else its position table (at most 512)."""
    options = (record or {}).get("options") or {}
    if options.get("max_length"):
        return int(options["max_length"])
    return min(model.config.max_positions, 512) if model.config.position == "learned" else 512


class Pipeline:
    task = ""

    def __init__(self, model: Model, tokenizer: Tokenizer, labels: Sequence[str] = (), record: dict | None = None,
                 truncation: str = "head"):
        from sesame.tasks.base import TRUNCATION

        if truncation not in TRUNCATION + (("window",) if self.task in WINDOWED else ()):
            raise ConfigError(f"{self.task}: truncation must be one of {', '.join(TRUNCATION)}"
                              f"{' or window' if self.task in WINDOWED else ''}, got {truncation!r}")
        self.model, self.tokenizer, self.labels = model, tokenizer, list(labels)
        self.record, self.truncation = dict(record or {}), truncation
        self.max_length = default_length(model, record)
        self.truncated = 0  # inputs cut to max_length so far

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def cls_last(self) -> bool:
        """XLNet's format: text [SEP] [CLS] (``model.pool_last``)."""
        return bool(self.model.config.pool_last)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """[CLS] text [SEP] rows (XLNet: text [SEP] [CLS]), right-padded, cut to ``max_length``
        by the truncation policy."""
        from sesame.tasks.base import cut

        check_texts(texts, self.task)
        rows = []
        for text in texts:
            body = self.tokenizer.encode(text).ids
            extra = len(self.tokenizer.build_inputs([])[0])
            if len(body) + extra > self.max_length:
                self.truncated += 1
                body = cut(body, self.max_length - extra, self.truncation)
            rows.append(self.tokenizer.build_inputs(body, cls_last=self.cls_last)[0])
        return self.pad(rows)

    def pad(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        return {"input_ids": ids, "attention_mask": mask}


def window_starts(n: int, room: int) -> list[int]:
    """Where the windows of ``room`` tokens over ``n`` tokens start: every ``room // 2`` tokens,
    the last one ending at ``n``, so every token is in a window (one window when ``n <= room``)."""
    step = max(room // 2, 1)
    starts = list(range(0, max(n - room, 0) + 1, step))
    if starts[-1] + room < n:
        starts.append(n - room)
    return starts


def _listify(inputs) -> tuple[list, bool]:
    return ([inputs], True) if isinstance(inputs, (str, dict)) else (list(inputs), False)


class FillMask(Pipeline):
    task = "fill-mask"

    def __call__(self, texts: str | Sequence[str], top_k: int = 5) -> list:
        """For each text, for each mask: the ``top_k`` fillers with probabilities."""
        texts, single = _listify(texts)
        vocab = self.tokenizer.vocab_size
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab:
            raise ConfigError(f"fill-mask: top_k must be between 1 and the vocabulary size {vocab}, got {top_k!r}")
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
                top = probs.topk(min(top_k, probs.numel()))
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
        if self.truncation == "window":
            out = torch.stack([self._windowed(t, pooling) for t in texts])
        else:
            out = self._pool(self.encode(texts), pooling)
        if normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out[0] if single else out

    def token_vectors(self, texts: str | Sequence[str]) -> list[list[tuple[str, torch.Tensor]]]:
        """Per text, (token, contextual vector) for each of its tokens, special tokens left out:
        with a contextual model (ELMo, BERT) the same word gets a vector of its sentence."""
        texts, single = _listify(texts)
        batch = self.encode(texts)
        with torch.no_grad():
            hidden = self.model(batch["input_ids"], batch["attention_mask"]).hidden.float().cpu()
        out = []
        for row, ids in enumerate(batch["input_ids"].tolist()):
            keep = [(t, i) for t, i in enumerate(ids) if batch["attention_mask"][row, t] and
                    not self.tokenizer.is_special(i)]
            out.append([(self.tokenizer.id_to_token(i), hidden[row, t]) for t, i in keep])
        return out[0] if single else out

    def _pool(self, batch, pooling: str) -> torch.Tensor:
        with torch.no_grad():
            hidden = self.model(batch["input_ids"], batch["attention_mask"]).hidden.float()
        if pooling == "cls":  # XLNet's [CLS] is each row's last real token
            mask = batch["attention_mask"]
            at = mask.sum(1) - 1 if self.cls_last else torch.zeros_like(mask[:, 0])
            return hidden[torch.arange(len(hidden), device=hidden.device), at].cpu()
        mask = batch["attention_mask"][..., None].float()
        return ((hidden * mask).sum(1) / mask.sum(1)).cpu()

    def _windowed(self, text: str, pooling: str) -> torch.Tensor:
        """A long text as the token-weighted mean of its windows' vectors (windows overlap by half)."""
        check_texts([text], self.task)
        ids = self.tokenizer.encode(text).ids
        room = self.max_length - len(self.tokenizer.build_inputs([])[0])
        starts = window_starts(len(ids), room)
        if len(starts) > 1:
            self.truncated += 1  # counted as a long input (read in windows, not cut)
        rows = [self.tokenizer.build_inputs(ids[s:s + room], cls_last=self.cls_last)[0] for s in starts]
        vecs = self._pool(self.pad(rows), pooling)
        weights = torch.tensor([float(len(r)) for r in rows])
        return (vecs * weights[:, None]).sum(0) / weights.sum()


class TextGeneration(Pipeline):
    task = "text-generation"

    def __call__(self, prompts: str | Sequence[str], **options) -> list[str] | str:
        prompts, single = _listify(prompts)
        check_texts(prompts, self.task)
        tok = self.tokenizer
        stops = [i for i in (tok.eos_id,) if i is not None]
        options.setdefault("stop_ids", stops)
        config = GenerateConfig().replace(**options)
        if config.strategy == "beam" and config.num_beams < 1:
            raise ConfigError(f"text-generation: beam search needs num_beams >= 1, got {config.num_beams}")
        if config.top_k < 0:
            raise ConfigError(f"text-generation: top_k must be 0 (off) or positive, got {config.top_k}")
        rows = [tok.encode(p).ids for p in prompts]
        if any(not r for r in rows):
            raise SesameError("text-generation: a prompt encodes to no tokens")
        limit = self.model.config.max_positions
        longest = max(len(r) for r in rows)
        if self.model.config.position == "learned" and longest + config.max_new_tokens > limit:
            raise ConfigError(f"text-generation: a prompt of {longest} tokens + max_new_tokens "
                              f"{config.max_new_tokens} = {longest + config.max_new_tokens} is more than the model's "
                              f"{limit} positions; shorten the prompt or lower max_new_tokens")
        width = max(len(r) for r in rows)
        pad = tok.pad_id if tok.pad_id is not None else (stops[0] if stops else 0)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        out = generate(self.model, ids, mask, config, pad_id=pad)
        texts = [tok.decode([t for t in new if t not in stops]) for new in out.new_tokens]
        return texts[0] if single else texts


class _TaskPipeline(Pipeline):
    """Pipelines that run a downstream task's own prediction code."""

    task_name = ""

    def __init__(self, model, tokenizer, labels=(), record=None, truncation: str = "head"):
        super().__init__(model, tokenizer, labels, record, truncation)
        from sesame.config import get

        if self.needs_labels and not self.labels:
            self.labels = [f"LABEL_{i}" for i in range(model.config.num_labels)]
        cls = get("task", self.task_name)
        options = {k: v for k, v in (self.record.get("options") or {}).items()
                   if k in {f.name for f in dataclasses.fields(cls.Options)} and k != "class_weights"}
        options["max_length"] = self.max_length
        if self.task_name == "classification":  # windows are the pipeline's; the task only ever cuts
            options["truncation"] = "head" if truncation == "window" else truncation
        self.runner = cls(tokenizer, self.labels or None, options)
        self.module = self.runner.wrap(model)

    def count_long(self, texts, reserved: int | None = None) -> None:
        """Count the inputs longer than ``max_length`` (the task cuts them by its policy);
        ``reserved``: special tokens the task adds (default: the tokenizer's ends)."""
        if reserved is None:
            reserved = len(self.tokenizer.build_inputs([])[0])
        room = self.max_length - reserved
        for t in texts:
            n = sum(len(self.tokenizer.encode(x).ids) for x in (t if isinstance(t, (tuple, list)) else [t]))
            self.truncated += n > room

    needs_labels = True


class TextClassification(_TaskPipeline):
    task, task_name = "text-classification", "classification"

    def __call__(self, texts, top_k: int = 1):
        """Texts (or (text, text_b) pairs) -> [{label, score}] best first."""
        from sesame.tasks import TextExample

        texts, single = _listify(texts)
        check_texts([x for t in texts for x in (t if isinstance(t, (tuple, list)) else [t])], self.task)
        if self.truncation == "window":
            probs = self._windowed(texts)
        else:
            self.count_long(texts)
            examples = [TextExample(*t) if isinstance(t, (tuple, list)) else TextExample(t) for t in texts]
            probs = self.runner.predict(self.module, examples).softmax(-1)
        out = []
        for row in probs:
            top = row.topk(min(top_k, len(row)))
            best = zip(top.values.tolist(), top.indices.tolist())
            out.append([{"label": self.labels[i], "score": p} for p, i in best])
        return out[0] if single else out


    def windows(self, text) -> tuple[list[dict], bool]:
        """The features of ``text``'s windows (overlapping by half) and whether it is longer than one
        window. A pair's second text is kept whole when the pair fits, else cut to half the room
        (head); the first text is windowed."""
        from sesame.tasks.base import IGNORE, cut

        a, b = (text[0], text[1]) if isinstance(text, (tuple, list)) else (text, None)
        a_ids = self.tokenizer.encode(a).ids
        b_ids = self.tokenizer.encode(b).ids if b is not None else None
        budget = self.max_length - (3 if b is not None else 2)  # the task's [CLS] a [SEP] (b [SEP])
        long = len(a_ids) + len(b_ids or []) > budget
        if long and b_ids is not None:
            b_ids = cut(b_ids, min(len(b_ids), budget // 2))
        room = budget - len(b_ids or [])
        rows = []
        for s in window_starts(len(a_ids), room):
            ids, types = self.runner.inputs(a_ids[s:s + room], b_ids)  # the task's format (XLNet: CLS last)
            rows.append({"input_ids": ids, "token_type_ids": types, "label": IGNORE})
        return rows, long

    def _windowed(self, texts) -> torch.Tensor:
        """(N, labels): each text's mean class probabilities over its windows."""
        feats, owner = [], []
        for i, text in enumerate(texts):
            rows, long = self.windows(text)
            self.truncated += long
            feats += rows
            owner += [i] * len(rows)
        probs = self.runner.predict_features(self.module, feats).softmax(-1)
        owner_t = torch.tensor(owner)
        return torch.stack([probs[owner_t == i].mean(0) for i in range(len(texts))])


_WORDS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+|[^\w\s]")


def split_words(text: str, tokenizer: Tokenizer | None = None) -> list[tuple[str, int, int]]:
    """Words with character spans, as the tokenizer's pre-tokenizer splits them (the words
    data preparation records: BERT's splits punctuation off, ``"(Reuters)"`` -> ``(``,
    ``Reuters``, ``)``; CJK characters one by one). Without a tokenizer: CJK characters, runs
    of letters and digits, and each punctuation mark."""
    if tokenizer is None:
        return [(m.group(), m.start(), m.end()) for m in _WORDS.finditer(text)]
    enc = tokenizer.encode(text)
    spans: list[list[int]] = []
    for (s, e), start in zip(enc.offsets, enc.word_starts):
        if e <= s:
            continue
        if start or not spans:
            spans.append([s, e])
        else:
            spans[-1][1] = max(spans[-1][1], e)
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():  # byte-level BPE words carry their leading space
            s += 1
        if s < e:
            out.append((text[s:e], s, e))
    return out


class TokenClassification(_TaskPipeline):
    task, task_name = "token-classification", "tagging"

    def __call__(self, texts):
        """Texts -> entities [{entity, text, start, end}] from the predicted BIO tags."""
        from sesame.tasks import TagExample
        from sesame.tasks.metrics import chunks

        texts, single = _listify(texts)
        check_texts(texts, self.task)
        words = [split_words(t, self.tokenizer) for t in texts]
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
        check_texts([x for it in items for x in (it["question"], it["context"])], self.task)
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
        check_texts(texts, self.task)
        # the seq2seq task appends only its end token ([CLS] and [SEP] on an encoder's prefix-LM route)
        self.count_long(texts, reserved=2 if self.runner.prefix_lm else 1)
        out = self.runner.predict(self.module, [PairExample(t) for t in texts])
        return out[0] if single else out


PIPELINES = {cls.task: cls for cls in (FillMask, FeatureExtraction, TextGeneration, TextClassification,
                                       TokenClassification, QuestionAnswering, Translation)}


def pipeline(task: str, model_dir: str | Path, weights: str = "fp32", device: str = "cpu",
             truncation: str = "head") -> Any:
    """A callable for ``task`` over the model in ``model_dir``; ``weights = "bf16"`` or
    ``"int8"`` trades a little precision for speed (decoding on a CPU is 2-4x faster);
    ``device``: cpu, cuda or auto; ``truncation``: the long-input policy (see above)."""
    if task not in PIPELINES:
        raise ConfigError(f"unknown pipeline {task!r}{closest(task, PIPELINES)}; pipelines: {', '.join(PIPELINES)}")
    where = resolve_device(device)
    model, tokenizer, labels = load_any(model_dir, weights)
    record_path = Path(model_dir) / "finetune.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    return PIPELINES[task](model.to(where), tokenizer, labels, record, truncation)
