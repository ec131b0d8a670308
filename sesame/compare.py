"""`sesame compare`: pre-train several setups (objectives, kernels, sizes) on ONE prepared
corpus and tokenizer with the same training-FLOP budget, fine-tune every result with identical
budgets and seeds, and report the table, JSON and a plot (sesame/compare_report.py).

A study is a TOML file::

    name = "objectives-en"
    base = "../bert-tiny-en.toml"        # the shared recipe (paths are relative to the study file)
    seeds = [0, 1]                       # pre-training seed s is fine-tuned with seed s
    evidence = "docs/evidence/objectives-en"
    [config.train]                       # merged over every arm's recipe
    threads = 1
    [budget]                             # flops = N, or steps = N (+ reference = "arm")
    reference = "mlm"
    steps = 1500
    [[arm]]
    name = "mlm"
    [[arm]]
    name = "electra"
    recipe = "../electra-tiny-en.toml"   # optional; else base
    [arm.config.objective]               # merged over the arm's recipe
    name = "electra"
    [[finetune]]
    dataset = "sst2"
    train = {steps = 1000, lr = 5e-4}
    options = {max_length = 64}
    strategy = {dropout = 0.1}           # optional: sesame.transfer.StrategyConfig keys, every cell
    [[evaluate]]                         # optional: held-out LM loss of every arm on the same files
    name = "persuasion"
    inputs = ["../shared/data/corpora/en/gutenberg/austen-persuasion.txt"]
    seq_len = [512, 4096]                # scored in windows of each length

The budget is training FLOPs (forward + backward matmuls, attention included, counted by
``torch.utils.flop_counter`` on real batches of each arm): ``steps = N`` with ``reference``
gives every arm the FLOPs of N steps of that arm; each arm's steps are that budget over its
own FLOPs per step (a recurrent arm's are counted with its memory full). Wall-clock seconds
are recorded beside it. Every arm reads windows of the base's ``data.seq_len`` unless the
study says ``same_windows = false`` (a context-length study). Every cell (a pre-training run,
a fine-tuning run) is an ordinary run directory under ``--out``; a finished cell is reused
and a killed one resumes, so the same command continues a study."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable

from sesame.config import RunConfig
from sesame.config.base import Section, choice
from sesame.config.data import BOUNDARIES
from sesame.config.run import load_dict, merge, read_toml
from sesame.errors import ConfigError
from sesame.transfer import as_strategy

# data keys that shape the prepared corpus: every arm must agree with the shared one
PREP_KEYS = ("format", "text_field", "column", "extensions", "doc_boundary", "sentences", "segmenter",
             "user_dict", "entities", "dedup")
STAGES = ("prepare", "plan", "pretrain", "finetune", "evaluate", "report")
RANDOM = "random init"


@dataclasses.dataclass
class Arm(Section):
    SECTION = "arm"
    name: str = ""
    recipe: str | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name == RANDOM:
            raise ConfigError(f"[[arm]] needs a name without '/' (not {RANDOM!r}), got {self.name!r}")


@dataclasses.dataclass
class Budget(Section):
    SECTION = "budget"
    flops: float | None = None
    steps: int | None = None
    reference: str | None = None

    def validate(self) -> None:
        if (self.flops is None) == (self.steps is None):
            raise ConfigError("[budget] takes flops = N, or steps = N (with reference = an arm's name for "
                              "equal FLOPs, without it the same steps for every arm)")
        if self.reference is not None and self.steps is None:
            raise ConfigError("[budget] reference goes with steps (the reference arm's FLOPs of that many steps)")
        if (self.steps is not None and self.steps < 1) or (self.flops is not None and self.flops <= 0):
            raise ConfigError("[budget] steps / flops must be positive")


@dataclasses.dataclass
class Finetune(Section):
    SECTION = "finetune"
    dataset: str = ""
    name: str | None = None  # the cell's folder and table title (default: dataset); two entries may share a dataset
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    strategy: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {dropout = 0.1}; every cell
    max_train: int | None = None
    metric: str | None = None  # the metric the table and plot lead with; default f1, else accuracy
    random_init: bool = True  # the first arm's architecture from random weights, as a baseline

    def validate(self) -> None:
        if not self.dataset:
            raise ConfigError("[[finetune]] needs dataset = a dataset name (see `sesame finetune --help`)")
        if self.name is None:
            self.name = self.dataset
        if "/" in self.name:
            raise ConfigError(f"[[finetune]] name {self.name!r} must not hold '/'")
        if "seed" in self.train:
            raise ConfigError(f"[[finetune]] {self.dataset}: the seed comes from the study's seeds; drop train.seed")
        if "transfer_layers" in self.strategy:
            raise ConfigError(f"[[finetune]] {self.dataset}: strategy.transfer_layers is the study's (all for the "
                              "arms, none for the random-init baseline); drop it")
        as_strategy(self.strategy)  # unknown keys and bad values fail when the study loads


@dataclasses.dataclass
class Evaluate(Section):
    """Held-out language-model loss of every arm's model on the same files, scored in
    windows of each ``seq_len`` (``sesame.evaluate.evaluate_lm``: packed windows, each
    scored once, so a token's context is its place in its window)."""

    SECTION = "evaluate"
    name: str = ""
    inputs: list[str] = dataclasses.field(default_factory=list)  # relative to the working directory
    seq_len: list[int] = dataclasses.field(default_factory=list)
    batch_size: int = 8
    doc_boundary: str = "file"  # a whole file is one document: windows reach across its paragraphs

    def validate(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"[[evaluate]] needs a name without '/', got {self.name!r}")
        choice(f"[[evaluate]] {self.name}: doc_boundary", self.doc_boundary, BOUNDARIES)
        if not self.inputs or not self.seq_len or min(self.seq_len) < 2 or self.batch_size < 1:
            raise ConfigError(f"[[evaluate]] {self.name}: needs inputs = [files], seq_len = [window lengths >= 2] "
                              "and batch_size >= 1")


@dataclasses.dataclass
class Study(Section):
    SECTION = "study"
    name: str = ""
    base: str = ""
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1])
    evidence: str | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: Budget | None = None
    arm: list[Arm] = dataclasses.field(default_factory=list)
    finetune: list[Finetune] = dataclasses.field(default_factory=list)
    evaluate: list[Evaluate] = dataclasses.field(default_factory=list)
    same_windows: bool = True  # false: arms may read windows of different data.seq_len (a context-length study)
    source: str = "study.toml"  # the study file (set by load_study); recipe paths are relative to its folder

    def validate(self) -> None:
        if not self.name or not self.base:
            raise ConfigError("a study needs name = ... and base = a recipe TOML")
        if self.budget is None:
            raise ConfigError("a study needs a [budget] table: flops = N, or steps = N (+ reference = an arm)")
        tables = [f.name for f in self.finetune]
        if len(set(tables)) != len(tables):
            raise ConfigError(f"[[finetune]] entries {tables} repeat a name; give each its own name = ...")
        evals = [e.name for e in self.evaluate]
        if len(set(evals)) != len(evals):
            raise ConfigError(f"[[evaluate]] entries {evals} repeat a name")
        names = [a.name for a in self.arm]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"a study needs [[arm]] tables with distinct names, got {names}")
        if self.budget.reference is not None and self.budget.reference not in names:
            raise ConfigError(f"[budget] reference = {self.budget.reference!r} is not an arm; arms: {names}")
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")

    def path(self, name: str) -> str:
        return str(Path(self.source).parent / name) if not Path(name).is_absolute() else name


def load_study(path: str | Path) -> Study:
    data = read_toml(Path(path), "study file")
    if "source" in data:
        raise ConfigError(f"{path}: unknown key `source` in the study")
    return Study.from_dict({**data, "source": str(path)})


def _recipe_dict(study: Study, recipe: str | None) -> dict:
    """The arm's recipe (or the study's base) as a dict; its own data paths stay as written,
    relative to the working directory, as the recipes ask ("run from the repository root")."""
    return load_dict(study.path(recipe) if recipe else study.path(study.base))


def base_config(study: Study) -> RunConfig:
    return RunConfig.from_dict(merge(_recipe_dict(study, None), study.config))


def arm_config(study: Study, arm: Arm, shared: Path, seed: int, steps: int | None = None) -> RunConfig:
    """The arm's run config over the shared tokenizer and corpus; fails on an arm whose data
    or tokenizer settings the shared corpus cannot honour."""
    data = merge(merge(_recipe_dict(study, arm.recipe), study.config), arm.config)
    base = base_config(study)
    mine = RunConfig.from_dict(data)
    diff = [k for k in PREP_KEYS if getattr(mine.data, k) != getattr(base.data, k)]
    mine_tok, base_tok = mine.tokenizer.to_dict(), base.tokenizer.to_dict()
    diff += [f"tokenizer.{k}" for k in sorted(set(mine_tok) | set(base_tok)) if mine_tok.get(k) != base_tok.get(k)]
    if diff:
        raise ConfigError(f"arm {arm.name!r} differs from the study's base in {', '.join(diff)}, which shape the "
                          "shared corpus or tokenizer; set them in the study's [config] for every arm")
    if study.same_windows and mine.data.seq_len != base.data.seq_len:
        raise ConfigError(f"arm {arm.name!r} asks data.seq_len = {mine.data.seq_len}, the base "
                          f"{base.data.seq_len}: a fair comparison reads the same windows (a "
                          "context-length study says same_windows = false)")
    data.setdefault("tokenizer", {})["path"] = str(shared / "tokenizer.json")
    data.setdefault("data", {}).update(inputs=[], corpus=str(shared / "corpus"))
    train = data.setdefault("train", {})
    train["seed"] = seed
    if steps is not None:
        train["steps"] = steps
        if int(train.get("warmup", 0)) >= steps:
            raise ConfigError(f"arm {arm.name!r}: train.warmup = {train['warmup']} is not below its {steps} "
                              "budget steps; set a shorter warmup in the study's [config.train]")
    return RunConfig.from_dict(data)


def prepare_shared(study: Study, shared: Path, progress: bool, say: Callable[[str], None]) -> None:
    """The one tokenizer and corpus every arm reads (trained and prepared once)."""
    from sesame.pretrain import get_corpus, get_tokenizer

    ready = shared / "ready.json"
    if ready.is_file():
        return
    shared.mkdir(parents=True, exist_ok=True)
    run = base_config(study)
    tok, note = get_tokenizer(run, shared, progress)
    say(note)
    corpus, note = get_corpus(dataclasses.replace(run, data=run.data.replace(corpus=None)), shared, tok, progress)
    say(note)
    _write_json(ready, {"tokenizer_hash": tok.hash, "tokens": corpus.meta.get("tokens")})


def flops_per_step(run: RunConfig, batches: int = 3) -> float:
    """Training FLOPs of one optimizer step (forward + backward), the mean over real batches;
    a recurrent arm is counted once its memory is full (its first segments run uncounted)."""
    import tempfile

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sesame.objectives.compose import reads_streams
    from sesame.pretrain import build_task, prepare_run
    from sesame.train.source import transform_rng

    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare_run(run, tmp, progress=False)
    torch.manual_seed(run.train.seed)
    task = build_task(prep.config, prep.tokenizer)
    module = task.build(prep.config.model)
    warm = -(-run.model.mem_len // run.data.seq_len) if reads_streams(run.objective) else 0
    total = 0.0
    for step in range(warm + batches):
        batch = task.transform(prep.train.batch(step, 0, 1, 0, 1), transform_rng(run.train.seed, step, 0))
        with FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops()) as counter:
            out = module(batch)
            (out.loss / max(float(out.count), 1.0)).backward()
        total += counter.get_total_flops() if step >= warm else 0
        module.zero_grad(set_to_none=True)
    return total / batches


def _cpu_attention_flops() -> dict:
    """torch's counter has no formula for the CPU flash-attention kernels; the same as for CUDA's."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def forward(q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(q, k, v)

    def backward(grad, q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad, q, k, v)

    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


def plan_steps(study: Study, shared: Path, out: Path, say: Callable[[str], None]) -> dict[str, dict]:
    """Per arm: FLOPs per step (measured once, kept in ``out/plan.json``) and its steps."""
    plan_file = out / "plan.json"
    known = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    plan = {}
    for arm in study.arm:
        run = arm_config(study, arm, shared, study.seeds[0])
        key = json.dumps(run.to_dict(), sort_keys=True, default=str)
        if known.get(arm.name, {}).get("key") == key:
            plan[arm.name] = known[arm.name]
            continue
        fps = flops_per_step(run)
        say(f"{arm.name}: {fps:.4g} FLOP per training step")
        plan[arm.name] = {"key": key, "flops_per_step": fps}
    b = study.budget
    budget = b.flops if b.flops is not None else (plan[b.reference]["flops_per_step"] * b.steps if b.reference
                                                  else None)
    for p in plan.values():
        p["steps"] = max(1, round(budget / p["flops_per_step"])) if budget is not None else b.steps
        p["flops"] = p["steps"] * p["flops_per_step"]
    _write_json(plan_file, plan)
    return plan


def run_study(study: Study, out: str | Path, *, arms: list[str] | None = None, seeds: list[int] | None = None,
              stages: tuple[str, ...] = STAGES, progress: bool = True, say: Callable[[str], None] = print,
              command: str | None = None) -> dict:
    """Run (or continue) the cells of ``study`` under ``out``; ``arms``/``seeds`` pick a slice, so
    two processes can share the work; the report reads every finished cell."""
    from sesame.compare_report import write_report

    out = Path(out)
    shared = out / "shared"
    unknown = [a for a in arms or [] if a not in [x.name for x in study.arm]]
    if unknown:
        raise ConfigError(f"--arms {unknown} are not in the study; arms: {[a.name for a in study.arm]}")
    bad = [s for s in seeds or [] if s not in study.seeds]
    if bad:
        raise ConfigError(f"--seeds {bad} are not in the study's seeds {study.seeds}")
    picked = [a for a in study.arm if arms is None or a.name in arms]
    my_seeds = [s for s in study.seeds if seeds is None or s in seeds]
    if {"prepare", "plan", "pretrain"} & set(stages):
        prepare_shared(study, shared, progress, say)
    plan = plan_steps(study, shared, out, say) if {"plan", "pretrain", "finetune"} & set(stages) else None
    if "plan" in stages:
        for name, p in plan.items():
            say(f"{name}: {p['steps']:,} steps of {p['flops_per_step']:.4g} FLOP = {p['flops']:.4g} FLOP")
    if "pretrain" in stages:
        for arm in picked:
            for seed in my_seeds:
                _pretrain_cell(study, arm, seed, plan[arm.name]["steps"], shared, out, progress, say)
    if "finetune" in stages:
        for spec in study.finetune:
            for seed in my_seeds:
                names = [a.name for a in picked] + ([RANDOM] if spec.random_init and study.arm[0] in picked else [])
                for name in names:
                    _finetune_cell(study, spec, name, seed, out, say)
    if "evaluate" in stages:
        for spec in study.evaluate:
            for arm in picked:
                for seed in my_seeds:
                    _evaluate_cell(spec, arm.name, seed, out, say)
    return write_report(study, out, command) if "report" in stages else {}


def _write_json(path: Path, data: dict) -> None:
    """Whole or not at all: a killed study never leaves half a cell record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def pretrain_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "pretrain" / arm / f"seed{seed}"


def finetune_dir(out: Path, dataset: str, arm: str, seed: int) -> Path:
    return out / "finetune" / dataset / ("random" if arm == RANDOM else arm) / f"seed{seed}"


def _pretrain_cell(study, arm, seed, steps, shared, out, progress, say) -> None:
    from sesame.pretrain import pretrain

    run_dir = pretrain_dir(out, arm.name, seed)
    if (run_dir / "summary.json").is_file():
        return
    say(f"pre-train {arm.name} seed {seed}: {steps:,} steps -> {run_dir}")
    summary = pretrain(arm_config(study, arm, shared, seed, steps), run_dir, resume=True, progress=progress,
                       say=say)
    keep = {k: summary.get(k) for k in ("steps", "seconds", "eval", "loss", "tokens_per_s", "model_dir")}
    _write_json(run_dir / "summary.json", keep)


def _finetune_cell(study, spec, name, seed, out, say) -> None:
    from sesame.finetune import finetune

    run_dir = finetune_dir(out, spec.name, name, seed)
    if (run_dir / "summary.json").is_file():
        return
    source = study.arm[0].name if name == RANDOM else name
    model = pretrain_dir(out, source, seed) / "model"
    if not (model / "config.toml").is_file():
        say(f"skip fine-tune {spec.name} / {name} seed {seed}: {model} is not pre-trained yet")
        return
    say(f"fine-tune {spec.name} / {name} seed {seed} -> {run_dir}")
    finetune(str(model), spec.dataset, run_dir, {**spec.train, "seed": seed}, spec.options,
             {**spec.strategy, "transfer_layers": "none" if name == RANDOM else "all"}, max_train=spec.max_train,
             progress=False, resume=run_dir.is_dir(), say=lambda _: None)


def evaluate_file(out: Path, name: str, arm: str, seed: int) -> Path:
    return out / "evaluate" / name / arm / f"seed{seed}.json"


def _evaluate_cell(spec: Evaluate, arm: str, seed: int, out: Path, say) -> None:
    from sesame.evaluate import evaluate_lm

    path = evaluate_file(out, spec.name, arm, seed)
    model = pretrain_dir(out, arm, seed) / "model"
    if path.is_file() or not (model / "config.toml").is_file():
        return
    results = {}
    for length in spec.seq_len:
        r = evaluate_lm(model, spec.inputs, seq_len=length, batch_size=spec.batch_size,
                        doc_boundary=spec.doc_boundary)
        say(f"evaluate {spec.name} / {arm} seed {seed}, windows of {length}: loss {r['loss']:.4f}, "
            f"perplexity {r['perplexity']:.2f} ({r['targets']:,} targets)")
        results[str(length)] = r
    _write_json(path, {"inputs": spec.inputs, "results": results})
