"""Saving and loading models in sesame's format: ``model.safetensors`` +
``config.toml``. Writes are atomic; loads are strict and report what happened."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tomllib
from pathlib import Path

import tomli_w
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sesame.config.model import ModelConfig
from sesame.errors import CheckpointError, ConfigError
from sesame.models.model import Model, build_model
from sesame.models.quantize import is_converted
from sesame.outputs import keep_foreign, writing

WEIGHTS, CONFIG = "model.safetensors", "config.toml"


@dataclasses.dataclass
class LoadReport:
    loaded: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    tied: list[str] = dataclasses.field(default_factory=list)
    renamed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {self.loaded} tensors"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected), ("tied", self.tied)):
            if items:
                lines.append(f"{label} ({len(items)}): {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}")
        if self.renamed:
            shown = ", ".join(f"{a} -> {b}" for a, b in self.renamed[:4])
            lines.append(f"renamed ({len(self.renamed)}): {shown}{' ...' if len(self.renamed) > 4 else ''}")
        return "\n".join(lines)


def atomic_dir(path: Path, need: int | None = None):
    """Context manager: yields a temporary sibling directory, renamed onto ``path`` on success.
    Files already in ``path`` that the writer did not write are carried over, never deleted; a
    full disk or a refused permission becomes an OutputError and leaves no temporary behind."""

    class _Atomic:
        def __enter__(self):
            self.tmp = path.with_name(path.name + ".tmp")
            with writing(path, need):
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp.mkdir(parents=True)
            self.guard = writing(path, need, cleanup=self.tmp)
            self.guard.__enter__()
            return self.tmp

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return self.guard.__exit__(exc_type, exc, tb)
            try:
                for f in self.tmp.iterdir():
                    if f.is_file():
                        os.chmod(f, 0o666 & ~_umask())
                old = path.with_name(path.name + ".old")
                if path.exists():
                    keep_foreign(path, self.tmp)
                    shutil.rmtree(old, ignore_errors=True)
                    os.replace(path, old)
                os.replace(self.tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            except BaseException as err:
                if self.guard.__exit__(type(err), err, err.__traceback__):
                    return False
                raise
            return self.guard.__exit__(None, None, None)

    return _Atomic()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def state_to_save(model: Model) -> dict[str, torch.Tensor]:
    """The state dict without tied copies (safetensors stores each tensor once)."""
    ties = model.ties()
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in ties}


def save_model(model: Model, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.toml`` (plus ``extra`` text files) atomically."""
    if is_converted(model):
        raise CheckpointError("this model's weights were converted to int8 for inference; save the float model "
                              "(load it again without weights='int8')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with atomic_dir(path, need) as tmp:
        save_file(state_to_save(model), str(tmp / WEIGHTS), metadata={"format": "pt", "library": "sesame"})
        (tmp / CONFIG).write_text(tomli_w.dumps({"model": model.config.to_dict()}))
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
    return path


def load_state(model: Model, state: dict[str, torch.Tensor], allow_missing: bool = False,
               strict: bool = True, renamed=()) -> LoadReport:
    """Load ``state`` into ``model``; shape mismatches, missing or unexpected keys are errors
    unless allowed. Returns a categorised report."""
    ties = model.ties()
    own = model.state_dict()
    expected = [k for k in own if k not in ties]
    report = LoadReport(renamed=list(renamed))
    report.tied = sorted(ties)
    report.missing = [k for k in expected if k not in state]
    report.unexpected = [k for k in state if k not in own]
    for key, tensor in state.items():
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{key} has shape {tuple(tensor.shape)} in the checkpoint but {tuple(own[key].shape)} in "
                "the model; the checkpoint was made for another config (check config.toml)"
            )
    if report.missing and not allow_missing:
        raise CheckpointError(
            f"checkpoint lacks {len(report.missing)} trained parameters ({', '.join(report.missing[:5])}"
            f"{' ...' if len(report.missing) > 5 else ''}); pass allow_missing=True to start them fresh"
        )
    if report.unexpected and strict:
        raise CheckpointError(
            f"checkpoint has {len(report.unexpected)} tensors the model does not use "
            f"({', '.join(report.unexpected[:5])}); pass strict=False to ignore them"
        )
    usable = {k: v for k, v in state.items() if k in own and k not in ties}
    model.load_state_dict(usable, strict=False)
    model.tie_weights()
    model.check_ties()
    report.loaded = len(usable)
    return report


def check_vocab(config: ModelConfig, vocab_size: int, special_ids: dict[str, int], where: str,
                pad: bool = True) -> None:
    """A tokenizer of ``vocab_size`` tokens with ``special_ids`` must fit a model of ``config``:
    every id inside the embedding table, the table no bigger than the vocabulary rounded up to a
    multiple of 128 (the padding some checkpoints add), and (``pad``) the same padding id."""
    rows = config.vocab_size
    padded = -(-vocab_size // 128) * 128
    bad = {r: i for r, i in special_ids.items() if not 0 <= i < rows}
    if vocab_size > rows or bad or rows > max(padded, vocab_size):
        raise CheckpointError(
            f"{where}: the tokenizer has {vocab_size} tokens"
            f"{f' (special ids {bad} outside the model)' if bad else ''} but the model's embedding has {rows} "
            "rows; they were not made together. Use the tokenizer the model was trained with (its "
            "tokenizer.json), or retrain the model with this tokenizer")
    pad_id = special_ids.get("pad")
    if pad and pad_id is not None and pad_id != config.pad_token_id:
        raise CheckpointError(f"{where}: the tokenizer's padding id is {pad_id} but the model's pad_token_id is "
                              f"{config.pad_token_id}; use the tokenizer the model was trained with")


def read_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a file; give the model directory that holds {CONFIG}")
    cfg_file = path / CONFIG
    if not cfg_file.is_file():
        hint = (
            " (it looks like a Hugging Face directory: run `sesame convert --from-hf` first)"
            if (path / "config.json").exists() else ""
        )
        raise CheckpointError(f"{str(path)!r} has no {CONFIG}, so it is not a sesame model directory{hint}")
    try:
        data = tomllib.loads(cfg_file.read_text())
    except tomllib.TOMLDecodeError as err:
        raise CheckpointError(f"{cfg_file} is not valid TOML: {err}") from None
    if "model" not in data:
        raise ConfigError(f"{cfg_file} has no [model] section")
    return ModelConfig.from_dict(data["model"])


def read_weights(file: str | Path) -> dict[str, torch.Tensor]:
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"weights file {str(file)!r} is missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{file} is truncated or corrupt ({err}); re-save it or fall back to an earlier checkpoint"
        ) from None


def load_model(path: str | Path, allow_missing: bool = False, strict: bool = True,
               config: ModelConfig | None = None) -> tuple[Model, LoadReport]:
    """Load a sesame model directory. ``config`` overrides the saved one (e.g. new heads)."""
    path = Path(path)
    saved = read_config(path)
    model = build_model(config or saved)
    report = load_state(model, read_weights(path / WEIGHTS), allow_missing, strict)
    return model, report
