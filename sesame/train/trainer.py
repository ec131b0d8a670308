"""The generic trainer: one loop for every Task.

Per optimizer step: fetch this rank's micro-batches from the BatchSource,
``task.transform`` each with an rng fixed by (seed, step, part), count their
targets, all-reduce the count, and back-propagate ``loss * world / global_count``
for each micro-batch (DDP averages over ranks), so accumulation and data
parallelism give exactly the full-batch gradient. Then clip, check for NaN/Inf,
step the optimizer, log, evaluate and checkpoint as configured."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sesame.config.train import TrainConfig
from sesame.errors import CheckpointError, ConfigError, SesameError
from sesame.outputs import writing
from sesame.task import Task
from sesame.train import checkpoint as ckpt
from sesame.train import distributed
from sesame.train.metrics import MetricsLog, Progress, perplexity
from sesame.train.nan import NonFiniteError, diagnose
from sesame.train.lock import RunLock
from sesame.train.optim import Schedule, build_optimizer
from sesame.train.resume import check_resume, history_comment
from sesame.train.source import EVAL, BatchSource, part_index, transform_rng


@dataclasses.dataclass
class StepResult:
    loss: float  # mean loss over the step's global targets
    count: int  # global targets
    tokens: int  # global input tokens
    grad_norm: float
    finite: bool
    metrics: dict[str, tuple[float, float]]
    skipped: bool = False


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError('train.device = "cuda" but no CUDA device is visible; use "auto" or "cpu"')
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: CUDA that reports bf16, or an
    x86 CPU with AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; elsewhere assumed not)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the device has native bf16 matrix units, else fp32 (emulated bf16
    on a CPU is several times slower than fp32); ``fp32`` and ``bf16`` are taken as given."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def _as_float(x: Any) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


class Trainer:
    """Train ``task``'s module on ``source``; see ``fit``.

    ``module``: an already built module (default ``task.build(model_config)``, built after
    seeding with ``train.seed``). ``config``: the resolved run config (RunConfig or dict)
    written to ``run_dir/config.toml``. ``on_log(record)``, ``on_eval(record)`` and
    ``on_save(path)`` are called on rank 0; ``on_step(step)`` on every rank before each
    optimizer step (0-based; e.g. gradual unfreezing, a pure function of the step)."""

    def __init__(self, task: Task, model_config, train_config: TrainConfig, source: BatchSource,
                 run_dir: str | Path, eval_source: BatchSource | None = None, module: torch.nn.Module | None = None,
                 *, config: Any = None, on_log: Callable[[dict], None] | None = None,
                 on_eval: Callable[[dict], None] | None = None, on_save: Callable[[Path], None] | None = None,
                 progress: bool = True, on_step: Callable[[int], None] | None = None):
        cfg = self.cfg = train_config
        self.task, self.model_config, self.source, self.eval_source = task, model_config, source, eval_source
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.config, self.on_log, self.on_eval, self.on_save = config, on_log, on_eval, on_save
        self.on_step = on_step
        self.progress = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        kind = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.dist = distributed.init(kind)
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        self.precision = resolve_precision(cfg.precision, self.device)
        world = self.dist.world
        self.micro_size = cfg.micro_batch_size or cfg.batch_size // world
        if cfg.batch_size % (self.micro_size * world) or self.micro_size == 0:
            raise ConfigError(
                f"train.batch_size = {cfg.batch_size} is not a multiple of micro_batch_size "
                f"({self.micro_size}) x {world} ranks"
            )
        self.accum = cfg.batch_size // (self.micro_size * world)
        size = getattr(source, "batch_size", None)
        if size is not None and size != cfg.batch_size:
            raise ConfigError(f"the training source makes batches of {size}, but train.batch_size = "
                              f"{cfg.batch_size}; build the source with the same batch size")
        self._seed(cfg.seed)
        if module is None:
            module = task.build(model_config)
        self.module = module.to(self.device)
        self._seed(cfg.seed + self.dist.rank)
        self.model = distributed.wrap(self.module, self.dist, self.device, cfg.find_unused)
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.optimizer = build_optimizer(self.module, cfg, self.device)
        self.schedule = Schedule(self.optimizer, cfg)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.step = 0
        self.skipped_steps = 0
        self.tokens_seen = 0
        self.elapsed = 0.0
        self.best_eval: float | None = None
        self.bad_evals = 0
        self.evals: list[dict] = []
        self._window = self._new_window()
        self.log: MetricsLog | None = None
        self.config_history: list[dict] = []  # accepted config changes on resume, with their steps

    @classmethod
    def from_run_config(cls, task: Task, run, source: BatchSource, run_dir: str | Path,
                        eval_source: BatchSource | None = None, **kwargs) -> "Trainer":
        """A trainer for a RunConfig: its ``model`` and ``train`` sections, and all of it in config.toml."""
        return cls(task, run.model, run.train, source, run_dir, eval_source, config=run, **kwargs)

    # ---- helpers ---------------------------------------------------------
    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    @staticmethod
    def _new_window() -> dict:
        return {"loss": 0.0, "count": 0, "tokens": 0, "steps": 0, "metrics": {}}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _forward(self, module, batch):
        with self._autocast():
            return module(batch)

    def micro_batches(self, step: int) -> list[dict]:
        """This rank's transformed (CPU) micro-batches of optimizer step ``step`` (0-based)."""
        d, out = self.dist, []
        for m in range(self.accum):
            raw = self.source.batch(step, m, self.accum, d.rank, d.world)
            out.append(self.task.transform(raw, transform_rng(self.cfg.seed, step, part_index(m, self.accum, d.rank))))
        return out

    def _reduce(self, values: list[float] | list[torch.Tensor]) -> list[float]:
        t = torch.stack([v.to(self.device, torch.float64) if isinstance(v, torch.Tensor)
                         else torch.tensor(float(v), dtype=torch.float64, device=self.device) for v in values])
        return self.dist.all_reduce(t).tolist()

    # ---- one step --------------------------------------------------------
    def compute_gradients(self, step: int) -> tuple[StepResult, list[dict]]:
        """Forward and backward over the step's micro-batches; leaves the (clipped) full-batch
        gradient in ``.grad``. Returns the result and the device batches (for diagnosis)."""
        cpu_batches = self.micro_batches(step)
        counts = [int(self.task.count(b)) for b in cpu_batches]
        tokens = [int(b["input_ids"].numel()) if isinstance(b.get("input_ids"), torch.Tensor) else c
                  for b, c in zip(cpu_batches, counts)]
        total, total_tokens = self._reduce([sum(counts), sum(tokens)])
        scale = self.dist.world / max(total, 1.0)
        batches = [self._to_device(b) for b in cpu_batches]
        self.optimizer.zero_grad(set_to_none=True)
        losses, metrics = [], {}
        for i, batch in enumerate(batches):
            with distributed.no_sync(self.model, i < len(batches) - 1):
                try:
                    out = self._forward(self.model, batch)
                except RuntimeError as err:
                    if "unused" not in str(err) and "did not receive grad" not in str(err):
                        raise
                    raise ConfigError("some parameters get no gradient, which DDP does not allow by "
                                      "default; set train.find_unused = true") from err
                if isinstance(out.count, int) and out.count != counts[i]:
                    raise SesameError(
                        f"task {self.task.name!r}: its module counted {out.count} targets in a micro-batch "
                        f"where task.count() said {counts[i]}; the two must agree for correct normalisation"
                    )
                loss = out.loss.float()
                (loss * scale).backward()
            losses.append(loss.detach())
            for name, (s, c) in out.metrics.items():
                prev = metrics.get(name, (0.0, 0.0))
                metrics[name] = (prev[0] + _as_float(s), prev[1] + _as_float(c))
        if self.cfg.clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip, foreach=True)
        else:
            grads = [p.grad.detach().float().norm() for p in self.params if p.grad is not None]
            norm = torch.stack(grads).norm() if grads else torch.zeros(())
        stacked = torch.stack(losses)
        names = sorted(metrics)
        reduced = self._reduce([stacked.sum(), (~torch.isfinite(stacked)).sum()]
                               + [v for n in names for v in metrics[n]])
        grad_norm = float(norm)
        finite = reduced[1] == 0 and math.isfinite(grad_norm)
        result = StepResult(reduced[0] / max(total, 1.0), int(total), int(total_tokens), grad_norm, finite,
                            {n: (reduced[2 + 2 * i], reduced[3 + 2 * i]) for i, n in enumerate(names)})
        return result, batches

    def train_step(self, step: int) -> StepResult:
        """Compute gradients and update (or apply the NaN policy) for optimizer step ``step``."""
        result, batches = self.compute_gradients(step)
        if not result.finite:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                report = diagnose(self.module, batches, lambda b: self._forward(self.module, b), step + 1,
                                  self.dist.rank)
            self.optimizer.zero_grad(set_to_none=True)
            self._write({"step": step + 1, "event": "nonfinite", "policy": self.cfg.nan_policy,
                         "report": str(report), **report.to_dict()})
            if self.cfg.nan_policy == "stop":
                raise NonFiniteError(str(report))
            self.skipped_steps += 1
            self._say(f"skipped step {step + 1}: {report}")
            result.skipped = True
            return result
        self.optimizer.step()
        return result

    # ---- evaluation ------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Loss, perplexity and the task's metrics over ``train.eval_batches`` held-out batches."""
        src, d = self.eval_source, self.dist
        if src is None:
            return {}
        n = min(self.cfg.eval_batches, getattr(src, "steps_per_epoch", self.cfg.eval_batches))
        loss, count, metrics = torch.zeros((), dtype=torch.float64, device=self.device), 0.0, {}
        self.module.eval()
        try:
            for i in range(n):
                raw = src.batch(i, 0, 1, d.rank, d.world)
                batch = self.task.transform(raw, transform_rng(self.cfg.seed, i, d.rank, EVAL))
                count += int(self.task.count(batch))
                out = self._forward(self.module, self._to_device(batch))
                loss += out.loss.double()
                for name, (s, c) in out.metrics.items():
                    prev = metrics.get(name, (0.0, 0.0))
                    metrics[name] = (prev[0] + _as_float(s), prev[1] + _as_float(c))
        finally:
            self.module.train()
        names = sorted(metrics)
        r = self._reduce([loss, count] + [v for k in names for v in metrics[k]])
        mean = r[0] / max(r[1], 1.0)
        record = {"step": self.step, "eval_loss": mean, "eval_ppl": perplexity(mean), "eval_targets": int(r[1])}
        for i, k in enumerate(names):
            record[f"eval_{k}"] = r[2 + 2 * i] / max(r[3 + 2 * i], 1.0)
        return record

    # ---- checkpoints -----------------------------------------------------
    def _trainer_state(self) -> dict:
        return {"skipped_steps": self.skipped_steps, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed,
                "best_eval": self.best_eval, "bad_evals": self.bad_evals, "window": self._window}

    def save(self) -> Path:
        """Checkpoint the current step (all ranks call this; rank 0 writes)."""
        rngs = self.dist.gather_bytes(json.dumps(ckpt.rng_state()).encode(), self.device)
        path = ckpt.step_dir(self.ckpt_dir, self.step)
        if self.dist.main:
            state = {"world": self.dist.world, "data": self.source.state_dict(),
                     "schedule": self.schedule.state_dict(), "rng": [json.loads(r) for r in rngs],
                     "trainer": self._trainer_state(), "metrics": {"evals": self.evals},
                     "config": self.config_dict(), "config_history": self.config_history}
            ckpt.save_checkpoint(self.ckpt_dir, self.step, self.module, self.optimizer, state, self.cfg.keep)
            if self.on_save:
                self.on_save(path)
        self.dist.barrier()
        return path

    def restore(self, path: Path, state: dict | None = None) -> dict:
        """Load a checkpoint: weights, optimizer, data position, RNG states, counters."""
        settings = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        state = ckpt.load_checkpoint(path, self.module, self.optimizer, state)
        for group, ours in zip(self.optimizer.param_groups, settings):
            group.update(ours)  # this run's settings (the same unless changed with allow_config_change)
        self.source.load_state_dict(state["data"])
        rngs = state.get("rng", [])
        if self.dist.rank < len(rngs):
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:
            self._seed(self.cfg.seed + self.dist.rank + 7919 * state["step"])
        t = state.get("trainer", {})
        self.step = state["step"]
        self.skipped_steps, self.tokens_seen = t.get("skipped_steps", 0), t.get("tokens_seen", 0)
        self.elapsed, self.best_eval, self.bad_evals = t.get("elapsed", 0.0), t.get("best_eval"), t.get(
            "bad_evals", 0)
        self._window = t.get("window") or self._new_window()
        self.evals = state.get("metrics", {}).get("evals", [])
        self.config_history = list(state.get("config_history", []))
        return state

    # ---- output ------------------------------------------------------------
    def _write(self, record: dict, prefix: str = "train") -> None:
        if self.log is not None:
            self.log.write(record, prefix)

    def _say(self, text: str) -> None:
        if self.dist.main:
            print(text, file=sys.stderr)

    def config_dict(self) -> dict:
        """The run's resolved config as plain data (what config.toml holds)."""
        cfg = self.config
        if cfg is None:
            cfg = {"train": self.cfg.to_dict()}
            if hasattr(self.model_config, "to_dict"):
                cfg["model"] = self.model_config.to_dict()
        return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)

    def _write_config(self) -> None:
        import tomli_w

        path = self.run_dir / "config.toml"
        tmp = path.with_name(path.name + ".tmp")
        with writing(path, cleanup=tmp):
            tmp.write_text(history_comment(self.config_history) + tomli_w.dumps(self.config_dict()),
                           encoding="utf-8")
            os.replace(tmp, path)

    def _guard_resume(self, state: dict, allow: bool) -> dict:
        """Compare this run's config with the checkpoint's (see train.resume); the accepted changes."""
        import tomllib

        old = state.get("config")
        if old is None and (self.run_dir / "config.toml").is_file():
            old = tomllib.loads((self.run_dir / "config.toml").read_text(encoding="utf-8"))
        if old is None:
            return {}
        changes = check_resume(old, self.config_dict(), state["step"], allow, str(self.run_dir))
        if changes:
            self._say("config changed on resume from step {}: {}".format(
                state["step"], ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())))
        return changes

    def _log_window(self, step_result: StepResult, lr: float, since: float) -> dict:
        w = self._window
        now = time.perf_counter()
        record = {"step": self.step, "loss": w["loss"] / max(w["count"], 1) if w["count"] else None,
                  "lr": lr, "tokens_per_s": w["tokens"] / max(now - since, 1e-9),
                  "grad_norm": step_result.grad_norm, "elapsed": round(self.elapsed, 3)}
        for k, (s, c) in sorted(w["metrics"].items()):
            record[k] = s / max(c, 1.0)
        if self.skipped_steps:
            record["skipped_steps"] = self.skipped_steps
        return record

    # ---- the loop --------------------------------------------------------
    def fit(self, resume: bool = False, allow_config_change: bool = False) -> dict:
        """Train to ``train.steps``. ``resume``: continue from the newest complete checkpoint in
        ``run_dir/checkpoints`` (incomplete or corrupt ones are named and skipped; when every one
        is bad that is an error, not a fresh start). The resumed config must match the
        checkpoint's (``allow_config_change`` admits optimisation/schedule changes, recorded).
        The run directory is locked while it runs (rank 0). Returns a summary: steps,
        start_step, loss, tokens_per_s, eval, checkpoint, skipped_steps, ..."""
        lock = RunLock(self.run_dir, self._say) if self.dist.main else contextlib.nullcontext()
        with lock:
            return self._fit(resume, allow_config_change)

    def _fit(self, resume: bool, allow_config_change: bool) -> dict:
        cfg, d = self.cfg, self.dist
        if cfg.precision == "auto":
            why = "native bf16" if self.precision == "bf16" else "no native bf16 matrix units"
            self._say(f"train.precision = auto: {self.precision} on {self.device.type} ({why})")
        skipped: list[str] = []
        path = None
        if resume:
            path, state, skipped = ckpt.find_resumable(self.ckpt_dir)
            for line in skipped:
                self._say(f"skipping checkpoint {line}")
            if path is None and ckpt.list_checkpoints(self.ckpt_dir):
                raise CheckpointError(
                    f"none of the checkpoints in {self.ckpt_dir} can be resumed ({'; '.join(skipped)}); nothing "
                    "was trained. Restore them, or move them away to start this run again from step 0")
            if path is not None:
                changes = self._guard_resume(state, allow_config_change)
                self.restore(path, state)
                if changes:
                    self.config_history.append({"step": state["step"], "changes": changes})
                self._say(f"resuming from {path} at step {self.step}")
        elif ckpt.list_checkpoints(self.ckpt_dir):
            raise CheckpointError(
                f"{self.run_dir} already holds checkpoints; resume them (resume=True / --resume) or choose a "
                "new run directory"
            )
        start = self.step
        if d.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self.log = MetricsLog(self.run_dir, cfg.tensorboard)
            self.log.open(start if path is not None else None, self._say)
            if resume:
                self._write({"step": start, "event": "resume", "checkpoint": path.name if path else None,
                             "skipped_checkpoints": skipped})
        d.barrier()
        bar = Progress(cfg.steps, start, self.progress and d.main)
        t_start = t_window = time.perf_counter()
        elapsed_before, last_saved, last_eval, stopped, result, lr = self.elapsed, None, None, False, None, 0.0
        last_loss, tokens_before = None, self.tokens_seen
        try:
            for step in range(start, cfg.steps):
                if self.on_step:
                    self.on_step(step)
                lr = self.schedule.apply(step)
                result = self.train_step(step)
                self.step = step + 1
                self.elapsed = elapsed_before + time.perf_counter() - t_start
                self.tokens_seen += result.tokens
                w = self._window
                w["tokens"] += result.tokens
                if not result.skipped:
                    last_loss = result.loss
                    w["loss"] += result.loss * result.count
                    w["count"] += result.count
                    for k, (s, c) in result.metrics.items():
                        prev = w["metrics"].get(k, (0.0, 0.0))
                        w["metrics"][k] = (prev[0] + s, prev[1] + c)
                if (cfg.log_every and self.step % cfg.log_every == 0) or self.step == cfg.steps:
                    record = self._log_window(result, lr, t_window)
                    self._write(record)
                    if self.on_log and d.main:
                        self.on_log(record)
                    bar.update(1, loss=f"{record['loss']:.4f}" if record["loss"] is not None else "nan",
                               tok_s=f"{record['tokens_per_s']:.0f}")
                    self._window, t_window = self._new_window(), time.perf_counter()
                else:
                    bar.update(1)
                if self.eval_source is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    last_eval, stopped = self._run_eval()
                if cfg.save_every and self.step % cfg.save_every == 0:
                    last_saved = self.save()
                if stopped:
                    self._say(f"early stopping at step {self.step}: no improvement in {cfg.early_stop} "
                              "evaluations")
                    break
            ran = self.step > start
            if ran and self.eval_source is not None and (last_eval is None or last_eval["step"] != self.step):
                last_eval, _ = self._run_eval()
            if last_saved is None or last_saved.name != ckpt.step_dir(self.ckpt_dir, self.step).name:
                if ran or not ckpt.list_checkpoints(self.ckpt_dir):
                    last_saved = self.save()
                else:
                    last_saved = path
        finally:
            bar.close()
            if self.log is not None:
                self.log.close()
                self.log = None
        spent = max(self.elapsed - elapsed_before, 1e-9)
        return {
            "steps": self.step, "start_step": start, "loss": last_loss,
            "tokens_per_s": (self.tokens_seen - tokens_before) / spent if self.step > start else 0.0,
            "seconds": spent, "eval": last_eval or (self.evals[-1] if self.evals else None),
            "best_eval_loss": self.best_eval, "checkpoint": str(last_saved) if last_saved else None,
            "skipped_steps": self.skipped_steps, "stopped_early": stopped, "skipped_checkpoints": skipped,
        }

    def _run_eval(self) -> tuple[dict, bool]:
        record = self.evaluate()
        self.evals.append(record)
        self._write({**record, "event": "eval"}, prefix="eval")
        if self.on_eval and self.dist.main:
            self.on_eval(record)
        if self.best_eval is None or record["eval_loss"] < self.best_eval:
            self.best_eval, self.bad_evals = record["eval_loss"], 0
        else:
            self.bad_evals += 1
        return record, bool(self.cfg.early_stop and self.bad_evals >= self.cfg.early_stop)

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        self.dist.close()
