"""One policy for every writer (`convert`, `tokenizer train`, `finetune --out`, `pretrain --out`,
`data prepare`, `distill`, `prune`, `quantize`): an existing non-empty target is refused unless
``--overwrite``, and a writer never deletes a file it did not create. Disk-full and permission errors become one
``OutputError`` naming the path (and, for a full disk, the space needed)."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterable

from sesame.errors import OutputError

# the files sesame writes into a model directory (save_model and the verbs' extras)
MODEL_FILES = ("model.safetensors", "config.toml", "tokenizer.json", "labels.json", "finetune.json",
               "masks.safetensors")
SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def is_taken(path: str | Path) -> bool:
    """A file, or a directory holding anything."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def claim_output(path: str | Path, overwrite: bool = False, what: str = "output",
                 flag: str = "--overwrite") -> Path:
    """``path`` if it is new or empty (or ``overwrite``); else OutputError naming the fix."""
    path = Path(path)
    if is_taken(path) and not overwrite:
        kind = "directory" if path.is_dir() else "file"
        raise OutputError(f"{what} {path} is an existing non-empty {kind}; pass {flag} to write into it "
                          "(files sesame did not write there are kept) or choose a new path")
    return path


def model_outputs(*dirs: str) -> tuple[str, ...]:
    """The sesame files inside the model directories ``dirs`` of a run (for ``own`` below)."""
    return tuple(f"{d}/{f}" for d in dirs for f in MODEL_FILES)


def claim_run_dir(path: str | Path, resume: bool, overwrite: bool = False, own: Iterable[str] = (),
                  resumable: bool = True) -> Path:
    """A training run's directory: new or empty, or resumed (``--resume``), or ``overwrite``, which
    removes only the entries named in ``own`` (what the verb writes there, e.g. ``checkpoints`` or
    ``model/model.safetensors``) and keeps everything else. ``resumable``: whether the verb offers
    ``--resume`` (the message names only the flags it has)."""
    path = Path(path)
    if not resume:
        taken = [p for p in path.iterdir() if p.name != ".lock"] if path.is_dir() else []
        if taken and not overwrite:
            shown = ", ".join(sorted(p.name for p in taken)[:6])
            how = ("pass --resume to continue that run, --overwrite to start it again where the verb offers it"
                   if resumable else "pass --overwrite to write it again")
            raise OutputError(f"run directory {path} already holds {shown}; {how} (only the run's own outputs "
                              "are replaced), or choose a new --out")
        for p in (path / name for name in own) if overwrite and taken else ():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    return path


def keep_foreign(old: Path, new: Path) -> list[str]:
    """Carry the entries of directory ``old`` that ``new`` lacks into ``new`` (hard links where
    possible), so replacing ``old`` by ``new`` deletes nothing the writer did not create."""
    kept = []
    if not old.is_dir():
        return kept
    for entry in sorted(old.iterdir()):
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)
        kept.append(entry.name)
    return kept


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def free_bytes(path: str | Path) -> int | None:
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e6:,.1f} MB"


def is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in SPACE:
        return True
    text = str(err)
    return "os error 28" in text or "No space left" in text


@contextlib.contextmanager
def writing(path: str | Path, need: int | None = None, cleanup: Path | None = None):
    """Turn a full disk or a refused permission while writing ``path`` into one OutputError;
    ``cleanup`` (a temporary file or directory) is removed first so a later run finds nothing
    half-written. ``need``: the bytes the write takes, for the message."""
    try:
        yield
    except Exception as err:
        full = is_disk_full(err)
        denied = isinstance(err, OSError) and err.errno in DENIED
        if not (full or denied):
            raise
        if cleanup is not None:
            if Path(cleanup).is_dir():
                shutil.rmtree(cleanup, ignore_errors=True)
            else:
                Path(cleanup).unlink(missing_ok=True)
        if full:
            raise OutputError(f"no space left on the device writing {path}: it needs about {_mb(need)}, "
                              f"{_mb(free_bytes(path))} free; free some space (or write elsewhere) and run "
                              "the same command again") from None
        raise OutputError(f"permission denied writing {path} ({err.strerror}); choose a writable location "
                          "or fix the permissions") from None
