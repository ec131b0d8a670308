"""Sequence-to-sequence fine-tuning (translation: Tatoeba, Multi30k; summarization)
of encoder-decoder models with the ``lm`` head, and of bidirectional encoders (UniLM)
as prefix LMs with the ``mlm`` head.

Source: ``source ids + [end]``. Teacher forcing: the decoder reads
``[start] + target ids`` and predicts ``target ids + [end]`` (labels are the
decoder inputs shifted left by one); the loss is the cross-entropy summed over
target tokens and ``count`` is the number of target tokens. ``start`` is the
tokenizer's ``bos`` (else ``[CLS]``, else ``<pad>`` as T5), ``end`` its ``eos`` (else ``[SEP]``).
Evaluation decodes with ``sesame.generate.generate`` (greedy, or beam search with
``num_beams > 1``) and scores corpus BLEU (``sacrebleu``; the ``zh`` tokenizer for
Chinese targets), chrF (``sacrebleu``), each with its sacrebleu signature, and ROUGE
(``rouge-score``; characters for Chinese).

Raw batch: ``{"examples": [PairExample]}`` or ``{"features": [...]}``. Transformed:
``input_ids``, ``attention_mask`` (B, S), ``decoder_input_ids``,
``decoder_attention_mask``, ``labels`` (B, T) with -100 on padding.

Prefix-LM route (``model.arch = "encoder"``, UniLM's seq2seq fine-tuning): one sequence
``[CLS] source [SEP] target [SEP]`` with ``token_type_ids`` 0 on ``[CLS] source [SEP]``
and 1 on ``target [SEP]``, under ``Layout(causal=True, prefix_len=len([CLS] source [SEP]))``:
the source sees itself bidirectionally, each target token the source and the target up
to itself. The loss is next-token (shifted), not UniLM's masked-target form: position
``i`` predicts token ``i + 1`` from the source's ``[SEP]`` on, so training is the very
computation cached decoding repeats (the prompt encoded once, then one token at a time;
``sesame.generate.generate(..., prefix_lm=True)``). The pre-trained ``mlm`` head is kept.
Transformed: ``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels`` (B, S),
``prefix_len`` (B,)."""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import torch
import torch.nn.functional as F

from sesame.config.base import choice
from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.generate import GenerateConfig, generate
from sesame.nn import Layout
from sesame.nn.attention.kernel import build_kernel
from sesame.task import TaskOutput
from sesame.tasks import metrics
from sesame.tasks.base import IGNORE, FinetuneTask, TaskModule, TaskOptions, device_of, inference, pad, to_device, \
    zero_loss
from sesame.tasks.examples import PairExample

_CJK = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"
_CJK_SPACE = re.compile(rf"(?<={_CJK})\s+|\s+(?={_CJK})")


@dataclasses.dataclass
class Seq2SeqOptions(TaskOptions):
    max_length: int = 128  # source tokens, end token included
    max_target_length: int = 64  # target tokens, end token included; also the decoding limit
    target_language: str = "en"  # "zh": BLEU over characters (sacrebleu zh), ROUGE over characters
    metrics: list[str] = dataclasses.field(default_factory=lambda: ["bleu", "chrf"])  # bleu, chrf, rouge
    num_beams: int = 1  # 1: greedy decoding
    length_penalty: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.max_target_length < 2:
            raise ConfigError("task option max_target_length must be at least 2")
        if self.num_beams < 1:
            raise ConfigError("task option num_beams must be at least 1")
        for name in self.metrics:
            choice("task.options.metrics[]", name, ("bleu", "chrf", "rouge"))


class Seq2SeqModule(TaskModule):
    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        out = self.model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"],
                         decoder_attention_mask=batch["decoder_attention_mask"], select=select)
        logits = out.logits["lm"]
        return _token_output(logits, labels[select])


def _token_output(logits: torch.Tensor, target: torch.Tensor) -> TaskOutput:
    """Summed cross-entropy and token accuracy over the selected positions' logits."""
    count = target.numel()
    if not count:
        return TaskOutput(zero_loss(logits), 0, {})
    loss = F.cross_entropy(logits.float(), target, reduction="sum")
    correct = (logits.argmax(-1) == target).sum().item()
    return TaskOutput(loss, count, {"token_accuracy": (correct, count)})


class PrefixLMModule(TaskModule):
    """An encoder trained as a prefix LM: bidirectional over the source, causal over the target."""

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        labels = batch["labels"]
        select = labels != IGNORE
        layout = Layout(causal=True, prefix_len=batch["prefix_len"], key_padding=batch["attention_mask"])
        out = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], layout=layout,
                         select=select)
        logits = out.logits["mlm"]
        return _token_output(logits, labels[select])


def join_cjk(text: str) -> str:
    """Drop the spaces a WordPiece decoder puts around CJK characters."""
    return _CJK_SPACE.sub("", text)


@register("task", "seq2seq")
class Seq2Seq(FinetuneTask):
    name = "seq2seq"
    head = "lm"
    archs = ("encoder-decoder", "encoder")
    Options = Seq2SeqOptions
    module_class = Seq2SeqModule
    prefix_lm = False  # set by check_arch: an encoder takes the prefix-LM route

    def __init__(self, tokenizer, labels=None, options: dict | None = None):
        super().__init__(tokenizer, labels, options)
        tok = tokenizer
        # T5's tokenizer has neither <s> nor [CLS]: its decoder starts from <pad>
        self.start_id = next((i for i in (tok.bos_id, tok.cls_id, tok.pad_id) if i is not None), None)
        self.end_id = tok.eos_id if tok.eos_id is not None else tok.sep_id
        if self.start_id is None or self.end_id is None:
            raise ConfigError("seq2seq needs a tokenizer with <s>/</s> (or [CLS]/[SEP]) to start and end targets")

    def head_fields(self) -> dict:
        return {}

    def check_arch(self, config) -> None:
        super().check_arch(config)
        self.prefix_lm = config.arch == "encoder"
        self.module_class = PrefixLMModule if self.prefix_lm else Seq2SeqModule
        if not self.prefix_lm:
            return
        if self.tokenizer.cls_id is None or self.tokenizer.sep_id is None:
            raise ConfigError("seq2seq on an encoder (prefix LM) needs a tokenizer with [CLS] and [SEP]")
        self.end_id = self.tokenizer.sep_id  # the target ends as BERT segments do
        if config.type_vocab_size < 2:
            raise ConfigError("seq2seq on an encoder (prefix LM) marks source and target with token_type_ids 0/1, "
                              f"but model.type_vocab_size = {config.type_vocab_size}; use a model pre-trained "
                              "with objective 'unilm' (or with type_vocab_size = 2), or an encoder-decoder")
        build_kernel(config.attention, 1.0, 0.0, {"causal", "prefix", "padding"}, config)  # raises if it cannot
        total = self.opts.max_length + self.opts.max_target_length
        if config.position == "learned" and config.max_positions < total:
            raise ConfigError(f"seq2seq on an encoder reads source and target as one sequence of up to {total} "
                              f"tokens, but model.max_positions = {config.max_positions}; lower "
                              "task.options.max_length / max_target_length")

    def model_config(self, config):
        if config.arch == "encoder":
            return config.replace(heads=["mlm"])
        return super().model_config(config)

    def features(self, examples: Sequence[PairExample]) -> list[dict]:
        if self.prefix_lm:
            return self._prefix_features(examples)
        o = self.opts
        out = []
        for ex in examples:
            src = self.tokenizer.encode(ex.source).ids[: o.max_length - 1] + [self.end_id]
            feat = {"input_ids": src, "decoder_input_ids": [self.start_id], "labels": [IGNORE]}
            if ex.target is not None:
                tgt = self.tokenizer.encode(ex.target).ids[: o.max_target_length - 1]
                feat["decoder_input_ids"] = [self.start_id, *tgt]
                feat["labels"] = [*tgt, self.end_id]
            out.append(feat)
        return out

    def _prefix_features(self, examples: Sequence[PairExample]) -> list[dict]:
        o, tok = self.opts, self.tokenizer
        out = []
        for ex in examples:
            src = [tok.cls_id, *tok.encode(ex.source).ids[: o.max_length - 2], tok.sep_id]
            tgt = [] if ex.target is None else [*tok.encode(ex.target).ids[: o.max_target_length - 1], tok.sep_id]
            ids = src + tgt
            # position i predicts token i + 1, from the source's [SEP] to the last target token
            labels = [IGNORE] * (len(src) - 1) + tgt + ([IGNORE] if tgt else [])
            out.append({"input_ids": ids, "token_type_ids": [0] * len(src) + [1] * len(tgt), "labels": labels,
                        "prefix_len": len(src)})
        return out

    def collate(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if self.prefix_lm:
            return {
                "input_ids": pad([f["input_ids"] for f in features], self.pad_id),
                "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
                "token_type_ids": pad([f["token_type_ids"] for f in features], 0),
                "labels": pad([f["labels"] for f in features], IGNORE),
                "prefix_len": torch.tensor([f["prefix_len"] for f in features], dtype=torch.long),
            }
        return {
            "input_ids": pad([f["input_ids"] for f in features], self.pad_id),
            "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
            "decoder_input_ids": pad([f["decoder_input_ids"] for f in features], self.pad_id),
            "decoder_attention_mask": pad([[1] * len(f["decoder_input_ids"]) for f in features], 0),
            "labels": pad([f["labels"] for f in features], IGNORE),
        }

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def decode(self, ids: Sequence[int]) -> str:
        ids = [i for i in ids if i != self.end_id]
        text = self.tokenizer.decode(ids)
        return join_cjk(text) if self.opts.target_language == "zh" else text

    def predict(self, module: Seq2SeqModule, examples: Sequence[PairExample], batch_size: int = 32) -> list[str]:
        """Decoded hypotheses, one per example."""
        o = self.opts
        config = GenerateConfig(strategy="beam" if o.num_beams > 1 else "greedy", num_beams=max(o.num_beams, 1),
                                max_new_tokens=o.max_target_length, stop_ids=[self.end_id],
                                length_penalty=o.length_penalty)
        feats = self.features(examples)
        out: list[str] = []
        if self.prefix_lm:
            return self._predict_prefix(module, feats, config, batch_size)
        with inference(module):
            for _, batch in self.batches(feats, batch_size):
                batch = to_device(batch, device_of(module))
                gen = generate(module.model, batch["input_ids"], batch["attention_mask"], config,
                               pad_id=self.pad_id, start_id=self.start_id)
                out += [self.decode(row) for row in gen.new_tokens]
        return out

    def _predict_prefix(self, module, feats: list[dict], config: GenerateConfig, batch_size: int) -> list[str]:
        """Prompts ``[CLS] source [SEP]``, left-padded, decoded over the cache as a prefix LM."""
        out: list[str] = []
        device = device_of(module)
        with inference(module):
            for i in range(0, len(feats), batch_size):
                prompts = [f["input_ids"][: f["prefix_len"]] for f in feats[i:i + batch_size]]
                width = max(len(p) for p in prompts)
                ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
                gen = generate(module.model, ids, mask, config, pad_id=self.pad_id, prefix_lm=True)
                out += [self.decode(row) for row in gen.new_tokens]
        return out

    def evaluate(self, module: Seq2SeqModule, examples: Sequence[PairExample], batch_size: int = 32,
                 report_dir=None, name: str | None = None) -> dict:
        """BLEU and/or ROUGE of the decoded hypotheses against the targets."""
        examples = [ex for ex in examples if ex.target is not None]
        hyps = self.predict(module, examples, batch_size)
        refs = [ex.target for ex in examples]
        scores: dict[str, float] = {}
        extra: dict = {}
        zh = self.opts.target_language == "zh"
        if "bleu" in self.opts.metrics:
            b = metrics.bleu(hyps, refs, tokenize="zh" if zh else "13a")
            scores["bleu"] = b["bleu"]
            extra["bleu"] = {k: v for k, v in b.items() if k != "bleu"}
        if "chrf" in self.opts.metrics:
            c = metrics.chrf(hyps, refs)
            scores["chrf"] = c["chrf"]
            extra["chrf"] = {"signature": c["signature"]}
        if "rouge" in self.opts.metrics:
            scores.update(metrics.rouge(hyps, refs, language="zh" if zh else "en"))
        result = {
            "task": self.name,
            "examples": len(examples),
            "metrics": scores,
            "details": extra,
            "predictions": [{"id": ex.id, "hypothesis": h, "reference": ex.target} for ex, h in zip(examples, hyps)],
        }
        if report_dir is not None:
            from sesame.tasks.report import write_report

            result["files"] = write_report(result, report_dir, name or self.name)
        return result
