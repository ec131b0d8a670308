"""Knowledge distillation as a task: ``DistillTask`` wraps the task the student learns
(a labeled task such as classification or tagging, the MLM objective, or plain corpus
text) and builds a ``DistillModule`` holding the teacher (frozen, eval mode, no
gradient) and the student; the trainer sees one module and one summed loss.

    loss = hard · CE(student, labels)                      (the task / MLM loss)
         + kd · T² · KL(teacher_T || student_T)             (Hinton; DistilBERT)
         + pred · soft-CE(teacher_T, student_T)             (TinyBERT prediction layer)
         + cos · (1 − cos(h_s W, h_t))  on the last hidden states          (DistilBERT)
         + embed · MSE(E_s W_e, E_t)                                       (TinyBERT)
         + hidden · Σ_m MSE(H_s^m W_h, H_t^g(m))                           (TinyBERT)
         + attention · Σ_m MSE(A_s^m, A_t^g(m))  on pre-softmax scores     (TinyBERT)
         + relation · KL(attention probs of the last layers)               (MiniLM, attention)
         + value_relation · KL(softmax(V Vᵀ/√d) of the last layers)        (MiniLM, values)

``g`` maps student layer m (1..M) to a teacher layer (uniform ``m·N/M`` by default);
``W``, ``W_e``, ``W_h`` are learned projections, present only when the widths differ.
Logit losses are over the task's targets (labeled rows; masked tokens for MLM); the
per-token losses are row means weighted by the row's target count, so every term sums
over the same targets as the task loss and accumulation stays exact.

Methods (``distill.method``) set the weights: ``distilbert`` (kd 5, hard 2, cos 1 as in
the DistilBERT paper, student from every other teacher layer), ``kd`` (kd + hard),
``tinybert-general`` (embed + hidden + attention on corpus text), ``tinybert-task``
(embed + hidden + attention + pred). Any weight can be set on top."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.base import Section, choice
from sesame.errors import ConfigError, TokenizerError
from sesame.models import Model, build_model
from sesame.models.io import load_state
from sesame.compress import losses
from sesame.compress.surgery import every_other, keep_layers
from sesame.task import Task, TaskOutput

IGNORE = -100
METHODS = {
    "distilbert": {"kd": 5.0, "hard": 2.0, "cos": 1.0, "init": "every_other"},
    "kd": {"kd": 1.0, "hard": 1.0},
    "tinybert-general": {"kd": 0.0, "hard": 0.0, "embed": 1.0, "hidden": 1.0, "attention": 1.0},
    "tinybert-task": {"kd": 0.0, "hard": 0.0, "embed": 1.0, "hidden": 1.0, "attention": 1.0, "pred": 1.0},
}
INITS = ("random", "every_other")
WEIGHTS = ("hard", "kd", "pred", "cos", "embed", "hidden", "attention", "relation", "value_relation")


@dataclasses.dataclass
class DistillConfig(Section):
    """Weights of the distillation losses, the temperature, the layer map, the student init.
    A weight left unset takes the method's value (0 if the method has none)."""

    SECTION = "distill"
    method: str = "kd"  # distilbert | kd | tinybert-general | tinybert-task
    temperature: float = 2.0
    hard: float | None = None  # task (or MLM) cross-entropy on the labels
    kd: float | None = None  # T² · KL on the logits
    pred: float | None = None  # TinyBERT prediction-layer soft cross-entropy
    cos: float | None = None  # DistilBERT cosine on the last hidden states
    embed: float | None = None  # TinyBERT embedding-layer MSE
    hidden: float | None = None  # TinyBERT per-layer hidden-state MSE
    attention: float | None = None  # TinyBERT per-layer attention-score MSE
    relation: float | None = None  # MiniLM: KL between the last layers' attention distributions
    value_relation: float | None = None  # MiniLM: KL between the last layers' value relations
    layer_map: list[int] | None = None  # teacher layer (1..N) for each student layer; default uniform
    init: str | None = None  # random | every_other (DistilBERT: the student copies teacher layers 0, 2, 4, ...)

    def validate(self) -> None:
        choice("distill.method", self.method, tuple(METHODS))
        if self.init is not None:
            choice("distill.init", self.init, INITS)
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature = {self.temperature} must be positive")
        for name in WEIGHTS:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"distill.{name} = {value} must be >= 0")

    def weight(self, name: str) -> float:
        value = getattr(self, name)
        return float(METHODS[self.method].get(name, 0.0) if value is None else value)

    @property
    def student_init(self) -> str:
        return self.init or METHODS[self.method].get("init", "random")

    def weights(self) -> dict[str, float]:
        return {n: self.weight(n) for n in WEIGHTS}


def uniform_map(student_layers: int, teacher_layers: int) -> list[int]:
    """TinyBERT's uniform strategy g(m) = m·N/M (rounded), for m = 1..M."""
    if student_layers > teacher_layers:
        raise ConfigError(f"the student has {student_layers} layers and the teacher {teacher_layers}: a layer "
                          "mapping needs a student no deeper than its teacher; use a shallower student or "
                          "turn the layer losses off (distill.hidden = distill.attention = 0)")
    return [round(m * teacher_layers / student_layers) for m in range(1, student_layers + 1)]


def check_tokenizers(teacher_tok, student_tok, teacher_vocab: int, student_vocab: int) -> None:
    """Teacher and student read the same token ids: same tokenizer, same vocabulary size."""
    if student_tok is not None and teacher_tok is not None and student_tok.hash != teacher_tok.hash:
        raise TokenizerError("the student's tokenizer differs from the teacher's (tokenizer hashes "
                             f"{student_tok.hash} != {teacher_tok.hash}); distillation compares outputs on the "
                             "same token ids, so the student must use the teacher's tokenizer")
    if student_vocab != teacher_vocab:
        raise TokenizerError(f"the student's model.vocab_size = {student_vocab} differs from the teacher's "
                             f"{teacher_vocab}; set model.vocab_size = {teacher_vocab} (the teacher's tokenizer)")


def init_from_teacher(teacher: Model, student_config) -> Model:
    """DistilBERT's init: the student is the teacher with every other layer kept; its
    config must equal the teacher's except for the depth."""
    keep = every_other(teacher.config.layers)
    t = teacher.config.to_dict()
    s = student_config.to_dict()
    differ = sorted(k for k in set(t) | set(s) if k not in ("layers", "head_counts", "heads", "num_labels",
                                                             "dropout", "attention_dropout")
                    and t.get(k) != s.get(k))
    if differ or student_config.layers != len(keep):
        what = ", ".join(f"{k}: student {s.get(k)} vs teacher {t.get(k)}" for k in differ[:4])
        raise ConfigError(f"distill.init = 'every_other' copies teacher layers {keep} into a student of the "
                          f"teacher's shape with {len(keep)} layers; this student differs"
                          f"{' (' + what + ')' if what else ''} (student layers {student_config.layers}). "
                          "Use distill.init = 'random' or a student config of the teacher's width")
    student = keep_layers(teacher, keep)
    config = student.config.replace(dropout=student_config.dropout, attention_dropout=student_config.attention_dropout)
    out = build_model(config)
    load_state(out, {k: v for k, v in student.state_dict().items() if k not in out.ties()})
    return out


class DistillModule(nn.Module):
    """Teacher (frozen, always eval, no gradient) + student; ``forward(batch) -> TaskOutput``.
    ``head``: the logit head both share (None: no logit losses). The student is ``.student``."""

    def __init__(self, teacher: Model, student: Model, cfg: DistillConfig, head: str | None):
        super().__init__()
        self.cfg, self.head, self.w = cfg, head, cfg.weights()
        self.teacher, self.student = teacher, student
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        ts, ss = teacher.config, student.config
        if head is None and any(self.w[n] for n in ("hard", "kd", "pred")):
            raise ConfigError("distill.hard / kd / pred need a logit head both models share; this run has none "
                              "(set them to 0, e.g. method = 'tinybert-general')")
        if head is not None and (head not in teacher.heads or head not in student.heads):
            raise ConfigError(f"the `{head}` head must exist in teacher and student (teacher heads "
                              f"{list(teacher.heads)}, student {list(student.heads)}); fine-tune the teacher first")
        layered = self.w["hidden"] or self.w["attention"]
        self.layer_map = cfg.layer_map or (uniform_map(ss.layers, ts.layers) if layered else [])
        if cfg.layer_map is not None and (len(cfg.layer_map) != ss.layers
                                          or not all(1 <= g <= ts.layers for g in cfg.layer_map)):
            raise ConfigError(f"distill.layer_map = {cfg.layer_map} must name a teacher layer in 1..{ts.layers} "
                              f"for each of the student's {ss.layers} layers")
        relational = self.w["relation"] or self.w["value_relation"]
        if self.w["attention"] or relational:
            t_heads = [b.attn.heads for b in teacher.body.layers]
            s_heads = [b.attn.heads for b in student.body.layers]
            pairs = list(zip(range(ss.layers), self.layer_map)) if self.w["attention"] else []
            pairs += [(ss.layers - 1, ts.layers)] if relational else []
            bad = [(m + 1, g) for m, g in pairs if s_heads[m] != t_heads[g - 1]]
            if bad:
                raise ConfigError(f"attention losses compare head by head, but student/teacher layers {bad} have "
                                  f"different head counts (student {s_heads}, teacher {t_heads}); give the student "
                                  "the teacher's head count or set distill.attention = distill.relation = "
                                  "distill.value_relation = 0")
        project = ss.hidden != ts.hidden
        self.hidden_proj = nn.Linear(ss.hidden, ts.hidden) if project and (layered or self.w["cos"]) else None
        self.embed_proj = nn.Linear(ss.hidden, ts.hidden) if project and self.w["embed"] else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher never trains (no dropout)
        return self

    def _proj(self, proj, x):
        return x if proj is None else proj(x)

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        w, cfg = self.w, self.cfg
        labels = batch["labels"]
        token_level = labels.dim() == 2
        keep = labels != IGNORE
        select = keep if token_level and self.head is not None else None
        states = bool(w["cos"] or w["embed"] or w["hidden"])
        maps = bool(w["attention"] or w["relation"] or w["value_relation"])
        args = (batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
        s = self.student(*args, select=select, output_hidden_states=states, output_attentions=maps)
        with torch.no_grad():
            t = self.teacher(*args, select=select, output_hidden_states=states, output_attentions=maps)
        count = int(keep.sum())
        weights = keep.sum(-1) if token_level else keep
        valid = batch["attention_mask"].bool() if batch.get("attention_mask") is not None else \
            torch.ones_like(batch["input_ids"], dtype=torch.bool)
        terms: dict[str, torch.Tensor] = {}
        metrics: dict[str, tuple[float, float]] = {}
        if self.head is not None:
            zs, zt = s.logits[self.head], t.logits[self.head]
            if not token_level:
                zs, zt = zs[keep], zt[keep]
            target = labels[keep]
            if w["hard"]:
                terms["hard"] = F.cross_entropy(zs.float(), target, reduction="sum")
            if w["kd"]:
                terms["kd"] = losses.soft_kl(zs, zt, cfg.temperature)
            if w["pred"]:
                terms["pred"] = losses.soft_ce(zs, zt, cfg.temperature)
            agree = (zs.argmax(-1) == zt.argmax(-1)).sum().item()
            metrics["accuracy"] = ((zs.argmax(-1) == target).sum().item(), count)
            metrics["teacher_agreement"] = (agree, count)
        if w["cos"]:
            terms["cos"] = losses.cosine(self._proj(self.hidden_proj, s.hidden), t.hidden, valid, weights)
        if w["embed"]:
            terms["embed"] = losses.mse(self._proj(self.embed_proj, s.hidden_states[0]), t.hidden_states[0],
                                        valid, weights)
        if w["hidden"]:
            terms["hidden"] = sum(losses.mse(self._proj(self.hidden_proj, s.hidden_states[m]), t.hidden_states[g],
                                             valid, weights) for m, g in enumerate(self.layer_map, 1))
        if w["attention"]:
            terms["attention"] = sum(losses.attention_mse(s.attentions[m].scores, t.attentions[g - 1].scores,
                                                          valid, weights) for m, g in enumerate(self.layer_map))
        if w["relation"]:
            terms["relation"] = losses.relation_kl(s.attentions[-1].probs, t.attentions[-1].probs, valid, weights)
        if w["value_relation"]:
            sv, tv = s.attentions[-1].values, t.attentions[-1].values
            if sv is None or tv is None or sv.shape[1] != s.attentions[-1].probs.shape[1] \
                    or tv.shape[1] != t.attentions[-1].probs.shape[1]:
                raise ConfigError("distill.value_relation needs one value vector per attention head in the last "
                                  "layers (no grouped-query attention, no relative values); set it to 0")
            terms["value_relation"] = losses.relation_kl(losses.value_relation(sv, valid),
                                                         losses.value_relation(tv, valid), valid, weights)
        if not terms:
            raise ConfigError("every distillation weight is 0; set at least one (distill.kd, hard, cos, ...)")
        loss = sum(w[n] * v for n, v in terms.items())
        for n, v in terms.items():
            metrics[f"loss_{n}"] = (float(v.detach()), count)
        return TaskOutput(loss, count, metrics)


class DistillTask(Task):
    """Distil ``teacher`` into ``student`` on the batches of ``inner`` (a labeled task or an
    objective; None: plain corpus text, every real token a target). The module is built
    around the given models; ``build(config)`` is not used."""

    name = "distill"

    def __init__(self, inner: Task | None, head: str | None, cfg: DistillConfig):
        self.inner, self.head, self.cfg = inner, head, cfg

    def transform(self, batch: dict[str, Any], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if self.inner is not None:
            return self.inner.transform(batch, rng)
        ids = torch.as_tensor(np.asarray(batch["input_ids"]))
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else torch.as_tensor(np.asarray(mask))
        out = {"input_ids": ids, "attention_mask": mask, "labels": torch.where(mask.bool(), 0, IGNORE)}
        if batch.get("token_type_ids") is not None:
            out["token_type_ids"] = torch.as_tensor(np.asarray(batch["token_type_ids"]))
        return out

    def count(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def module(self, teacher: Model, student: Model) -> DistillModule:
        return DistillModule(teacher, student, self.cfg, self.head)

    def build(self, model_config) -> nn.Module:
        raise ConfigError("a distillation task wraps given teacher and student models: use DistillTask.module")


# ---------------------------------------------------------------- the pipeline

def student_model(student, teacher: Model, teacher_tok, cfg: DistillConfig, overrides: dict | None = None,
                  seed: int = 0):
    """The student: a model directory (its tokenizer must be the teacher's), or a TOML file /
    preset name whose [model] table (plus ``overrides``) goes over the teacher's config
    (initialised from ``seed`` when not from the teacher's layers)."""
    from pathlib import Path

    from sesame.config.model import ModelConfig
    from sesame.config.run import load_dict
    from sesame.pipelines import load_any

    path = Path(str(student))
    if student and path.is_dir():
        model, tok, _ = load_any(path)
        check_tokenizers(teacher_tok, tok, teacher.config.vocab_size, model.config.vocab_size)
        return model.train(), f"student loaded from {path}"
    given = dict(load_dict(str(student)).get("model", {})) if student else {}
    given.update(overrides or {})
    base = teacher.config.to_dict()
    base.pop("head_counts", None)
    if cfg.student_init == "every_other":
        base["layers"] = len(every_other(teacher.config.layers))
    config = ModelConfig.from_dict({**base, **given}, "student model")
    check_tokenizers(None, None, teacher.config.vocab_size, config.vocab_size)
    if cfg.student_init == "every_other":
        return init_from_teacher(teacher, config), f"student: teacher layers {every_other(teacher.config.layers)}"
    torch.manual_seed(seed)
    return build_model(config), f"student: {config.layers} layers, hidden {config.hidden}, random init"


def distill(teacher_dir, student, run_dir, cfg: DistillConfig | dict | None = None, *, dataset: str | None = None,
            corpus: list[str] | None = None, data: dict | None = None, train=None, options: dict | None = None,
            student_overrides: dict | None = None, max_train: int | None = None, max_eval: int | None = None,
            data_dir=None, progress: bool = True, say=print) -> dict:
    """Distil the model in ``teacher_dir`` into ``student`` on ``dataset`` (task-specific:
    the teacher must be fine-tuned on it) or on ``corpus`` text files (task-agnostic:
    MLM logits when kd/hard/pred weights are set, else TinyBERT's general stage on plain
    text). The student is saved to ``run_dir/model``; returns the summary."""
    import json
    from pathlib import Path

    from sesame.compress import run as R
    from sesame.pipelines import load_any

    run_dir = Path(run_dir)
    cfg = cfg if isinstance(cfg, DistillConfig) else DistillConfig.from_dict(dict(cfg or {}), "distill")
    if (dataset is None) == (corpus is None):
        raise ConfigError("distill on a labeled data set (dataset=...) or on corpus text (corpus=[files]), one of them")
    teacher, tok, labels = load_any(teacher_dir)
    seed = train.get("seed", 0) if isinstance(train, dict) else getattr(train, "seed", 0)
    student, note = student_model(student, teacher, tok, cfg, student_overrides, seed)
    notes = [note]
    summary: dict = {"teacher": str(teacher_dir), "distill": cfg.to_dict(), "weights": cfg.weights()}
    if dataset is not None:
        labeled = R.load_labeled(dataset, teacher, tok, options, max_train, max_eval, data_dir=data_dir)
        task = labeled.task
        if task.head not in teacher.heads or (task.needs_labels and labels != labeled.labels):
            raise ConfigError(f"the teacher {teacher_dir} has no `{task.head}` head trained on {dataset}'s labels "
                              f"{labeled.labels}; fine-tune it first: sesame finetune {teacher_dir} "
                              f"--dataset {dataset}")
        task.wrap(teacher)
        student = task.wrap(student).model
        module = DistillModule(teacher, student, cfg, task.head)
        tcfg = R.train_config(train, student, len(labeled.train))
        fit, _ = R.fit(DistillTask(task, task.head, cfg), module, student.config, tcfg, labeled.train, run_dir,
                       progress=progress, config={"distill": cfg.to_dict()})
        summary.update(dataset=dataset, train_examples=len(labeled.train), train=fit, notes=notes + labeled.notes,
                       eval=R.evaluate(labeled, student), teacher_eval=R.evaluate(labeled, teacher))
        record = {"dataset": dataset, "task": task.name, "labels": labeled.labels, "source_model": str(teacher_dir),
                  "options": task.opts.to_dict(), "distill": cfg.to_dict()}
        R.save(student, tok, labeled.labels, run_dir / "model", record)
    else:
        from sesame.config import RunConfig
        from sesame.objectives import Vocab
        from sesame.objectives.mlm import MLM
        from sesame.pretrain import prepare_run
        from sesame.train import Trainer

        logits = any(cfg.weight(n) for n in ("hard", "kd", "pred"))
        run = RunConfig.from_dict({"model": student.config.to_dict(), "tokenizer": {"path": str(teacher_dir)},
                                   "data": {"inputs": list(corpus), **(data or {})}, "objective": {"name": "mlm"},
                                   "train": dict(train or {})})
        prep = prepare_run(run, run_dir, progress)
        inner = MLM(Vocab.from_tokenizer(prep.tokenizer)) if logits else None
        module = DistillModule(teacher, student, cfg, "mlm" if logits else None)
        trainer = Trainer(DistillTask(inner, "mlm" if logits else None, cfg), student.config, prep.config.train,
                          prep.train, run_dir, module=module, progress=progress,
                          config={"distill": cfg.to_dict(), **prep.config.to_dict()})
        try:
            fit = trainer.fit()
        finally:
            trainer.close()
        summary.update(corpus=list(corpus), train=fit, notes=notes + prep.notes)
        R.save(student, tok, [], run_dir / "model", {"source_model": str(teacher_dir), "distill": cfg.to_dict()})
    summary["size"] = {"teacher": R.size(teacher), "student": R.size(student)}
    summary["model_dir"] = str(run_dir / "model")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
