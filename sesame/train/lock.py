"""A run directory's lock: ``RUN/.lock``, an ``fcntl.flock`` held for the whole run, holding
the owner's pid, host and start time. A second process on the same directory gets an
OutputError naming the holder; a lock file left by a process that died (the kernel released
its flock) is reported as stale and taken over. Re-entrant within one process, so
``sesame pretrain`` can take it first thing and the trainer again around ``fit``."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

from sesame.errors import OutputError

LOCK = ".lock"
_held: dict[str, list] = {}  # resolved path -> [fd, depth]


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (or a plain process): the one that writes the run."""
    return int(os.environ.get("RANK", "0")) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> dict:
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


class RunLock:
    """``with RunLock(run_dir, say):`` holds ``run_dir/.lock`` (created with the directory)."""

    def __init__(self, run_dir: str | Path, say: Callable[[str], None] | None = None):
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK
        self.say = say
        self.key = ""

    def acquire(self) -> "RunLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = str(self.path.resolve())
        if self.key in _held:
            _held[self.key][1] += 1
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                os.close(fd)
                h = _holder(text)
                who = (f"pid {h.get('pid')} on {h.get('host')} since {h.get('started')}" if h
                       else "another process")
                raise OutputError(f"run directory {self.dir} is in use by {who} (lock {self.path}); wait for "
                                  "that run to finish or choose another --out") from None
            try:  # the holder may have removed the file between our open and our lock: retry then
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if old and self.say is not None:
            pid = old.get("pid")
            state = ("is gone" if isinstance(pid, int) and old.get("host") == socket.gethostname()
                     and not _alive(pid) else "no longer holds it")
            self.say(f"note: {self.path} was a stale lock of pid {pid} on {old.get('host')} (that process "
                     f"{state}); taking it over")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        _held[self.key] = [fd, 1]
        return self

    def release(self) -> None:
        entry = _held.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[self.key]
        fd = entry[0]
        try:
            os.unlink(self.path)  # while still locked, so no one takes the file we are about to drop
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_lock(run_dir: str | Path, say: Callable[[str], None] | None = None):
    """The lock on rank 0; a no-op context on other ranks (rank 0 writes the run)."""
    import contextlib

    return RunLock(run_dir, say) if is_main_process() else contextlib.nullcontext()
