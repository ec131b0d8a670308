"""A training run read as a model: a checkpoint directory (``runs/NAME/checkpoints/step-N``)
loads wherever a model directory does (``pipelines.load_any``). It lives here, beside the
loaders, because it needs the model layer, which the trainer (``sesame/train``) never imports."""
from __future__ import annotations

import tomllib
from pathlib import Path

from sesame.config.model import ModelConfig
from sesame.errors import CheckpointError
from sesame.models.io import load_state
from sesame.models.model import build_model
from sesame.train.checkpoint import MODEL, load_tensors, read_state


def run_tokenizer(run: Path, run_config: dict) -> Path:
    """Where a run's tokenizer lives: its own copy, its model's, or the config's tokenizer.path."""
    for d in (run, run / "model"):
        if (d / "tokenizer.json").is_file():
            return d
    path = run_config.get("tokenizer", {}).get("path")
    return Path(path) if path else run


def checkpoint_model(path: Path):
    """(model, tokenizer location) for a training checkpoint: the run's ``[model]`` config with
    the checkpoint's weights, the objective's or task's wrapper (``model.`` prefix) removed.
    Fine-tune or evaluate an intermediate step like a model directory."""
    path = Path(path)
    state = read_state(path)
    run = path.parent.parent
    if not (run / "config.toml").is_file():
        raise CheckpointError(f"checkpoint {path} has no run config at {run / 'config.toml'}: give the run's "
                              "own checkpoints/step-N directory")
    try:
        run_config = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{run / 'config.toml'} is not valid TOML ({err})") from None
    if not isinstance(run_config.get("model"), dict):
        raise CheckpointError(f"{run / 'config.toml'} has no [model] section")
    config = ModelConfig.from_dict(run_config["model"], "model")
    tensors = load_tensors(path / MODEL)
    for key, src in state.get("aliases", {}).items():
        tensors[key] = tensors[src]
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = build_model(config)
    load_state(model, weights, strict=False)
    return model, run_tokenizer(run, run_config)
