"""Training checkpoints: ``checkpoints/step-000500/`` holding ``model.safetensors``,
``optimizer.safetensors`` and ``state.json``, written as ``step-000500.tmp`` and
renamed. state.json is written last and records each file's size and SHA-256, so
a checkpoint is complete exactly when state.json exists and every hash matches.
Nothing is pickled: tensors go to safetensors, everything else to JSON, RNG states
as base64."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sesame.errors import CheckpointError
from sesame.outputs import writing

MODEL, OPTIMIZER, STATE = "model.safetensors", "optimizer.safetensors", "state.json"
FORMAT = 1
_NAME = re.compile(r"^step-(\d+)$")


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:06d}"


# ---- tensors -------------------------------------------------------------
def split_shared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors safetensors can store, and aliases (key -> stored key) for tensors that are the
    same view of the same storage (tied weights). Other overlapping views are copied."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for key, t in state.items():
        t = t.detach()
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
        if t.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        ptr = t.untyped_storage().data_ptr()
        shared = t.numel() and ptr in storages
        seen[ident] = key
        storages.add(ptr)
        t = t.cpu()
        out[key] = t.clone() if shared or not t.is_contiguous() else t
    return out, aliases


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    save_file(tensors, str(path), metadata={"format": "pt", "library": "sesame", **meta})


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt ({err})") from None


_load_tensors = load_tensors


def model_state(module: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return split_shared(module.state_dict())


def load_model_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], aliases: dict[str, str]):
    state = dict(tensors)
    for key, src in aliases.items():
        state[key] = tensors[src]
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"the checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}; "
            "was it written for another model config?"
        )


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten ``opt.state_dict()``: tensors to ``state.<index>.<name>``, the rest to JSON."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"state": plain, "param_groups": groups}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in plain["state"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in plain["param_groups"]]
    ours = [len(g["params"]) for g in opt.param_groups]
    theirs = [len(g["params"]) for g in groups]
    if ours != theirs:
        raise CheckpointError(
            f"the checkpoint's optimizer has parameter groups of sizes {theirs}, this run has {ours}; "
            "resume with the same model and optimizer settings"
        )
    opt.load_state_dict({"state": state, "param_groups": groups})


# ---- RNG -----------------------------------------------------------------
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def rng_state() -> dict:
    """This process's python, numpy, torch CPU and CUDA generator states, as JSON."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        states = [_unb64(s) for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ---- directories ---------------------------------------------------------
def save_checkpoint(root: Path, step: int, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict, keep: int = 0) -> Path:
    """Write ``root/step-NNNNNN`` atomically; ``state`` (JSON-able) goes into state.json with the
    optimizer's non-tensor state and the file hashes. Then keep the newest ``keep`` complete
    checkpoints (see ``prune``). A full disk is an OutputError naming the space needed, and
    leaves no ``.tmp`` behind."""
    root = Path(root)
    final = step_dir(root, step)
    tmp = final.with_name(final.name + ".tmp")
    tensors, aliases = model_state(module)
    opt_tensors, opt_plain = optimizer_state(optimizer)
    need = sum(t.numel() * t.element_size() for t in (*tensors.values(), *opt_tensors.values()))
    with writing(final, need, cleanup=tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _save_tensors(tensors, tmp / MODEL, {"aliases": json.dumps(aliases)})
        _save_tensors(opt_tensors, tmp / OPTIMIZER, {})
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _hash(tmp / name)}
                 for name in (MODEL, OPTIMIZER)}
        record = {"format": FORMAT, "step": step, **state, "optimizer": opt_plain, "aliases": aliases,
                  "files": files, "complete": True}
        _write_json(tmp / STATE, record)
        mode = 0o666 & ~_umask()
        for f in tmp.iterdir():
            os.chmod(f, mode)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    try:
        fd = os.open(root, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass
    if keep > 0:
        prune(root, keep, final)
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def prune(root: Path, keep: int, newest: Path | None = None) -> list[Path]:
    """Delete complete checkpoints beyond the newest ``keep`` complete ones. Only checkpoints
    that pass ``read_state`` (sizes checked) count, the one just written (``newest``) is never
    deleted, and incomplete or corrupt ones are left for the user to inspect. Returns the deleted."""
    good = []
    for _, path in reversed(list_checkpoints(root)):
        try:
            read_state(path, verify=False)
        except CheckpointError:
            continue
        good.append(path)
    removed = [p for p in good[keep:] if newest is None or p != newest]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Checkpoint directories (complete or not) by step, oldest first; ``.tmp`` excluded."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def read_state(path: Path, verify: bool = True) -> dict:
    """state.json of a checkpoint after checking it is complete; CheckpointError names the fault."""
    path = Path(path)
    state_file = path / STATE
    if not state_file.is_file():
        raise CheckpointError(f"checkpoint {path.name} is incomplete: {STATE} is missing")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {path.name}: {STATE} is corrupt ({err})") from None
    if not isinstance(state, dict) or not state.get("complete") or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path.name} is not marked complete (or has an unknown format)")
    files = state.get("files")
    if (not isinstance(files, dict) or set(files) != {MODEL, OPTIMIZER} or not isinstance(state.get("step"), int)
            or any(not isinstance(i, dict) or not isinstance(i.get("bytes"), int)
                   or not isinstance(i.get("sha256"), str) for i in files.values())):
        raise CheckpointError(f"checkpoint {path.name}: {STATE} is corrupt (its step or file records are "
                              "missing or malformed)")
    for name, info in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path.name} is incomplete: {name} is missing")
        size = file.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(
                f"checkpoint {path.name}: {name} is truncated or altered ({size} bytes, expected {info['bytes']})"
            )
        if verify and _hash(file) != info["sha256"]:
            raise CheckpointError(f"checkpoint {path.name}: {name} is corrupt (SHA-256 does not match)")
    return state


def find_resumable(root: Path, verify: bool = True) -> tuple[Path | None, dict | None, list[str]]:
    """The newest complete checkpoint under ``root``, its state, and one line per checkpoint that
    was skipped (incomplete, corrupt or a leftover ``.tmp``), newest first."""
    root = Path(root)
    skipped = []
    if root.is_dir():
        for p in sorted(root.iterdir(), reverse=True):
            if p.name.endswith((".tmp", ".old")):
                skipped.append(f"{p.name}: an unfinished write (the run stopped while saving)")
    for _, path in reversed(list_checkpoints(root)):
        try:
            return path, read_state(path, verify), skipped
        except CheckpointError as err:
            skipped.append(str(err))
    return None, None, skipped


def load_checkpoint(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict | None = None) -> dict:
    """Load weights (and optimizer state) from a checkpoint directory; returns its state.json."""
    path = Path(path)
    state = state if state is not None else read_state(path)
    load_model_state(module, load_tensors(path / MODEL), state.get("aliases", {}))
    if optimizer is not None:
        load_optimizer_state(optimizer, load_tensors(path / OPTIMIZER), state["optimizer"])
    return state
