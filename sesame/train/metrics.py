"""Run logging: ``metrics.jsonl`` (one JSON object per line: train steps, evaluations
and events), optional TensorBoard, and a tqdm progress bar."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

from sesame.errors import ConfigError, DataError
from sesame.outputs import writing

METRICS = "metrics.jsonl"


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def read_metrics(path: str | Path, strict: bool = False) -> list[dict]:
    """The records of a metrics.jsonl (a run directory or the file). A torn last line (no
    newline: the run was killed mid-write) is ignored; any other line that is not a JSON object
    is ignored too, unless ``strict``, where it is a DataError naming the line."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    records, bad = _parse(path)
    if bad and strict:
        n, line, err = bad[0]
        shown = line[:80].decode("utf-8", "replace")
        raise DataError(f"{path} line {n} is corrupt ({err}): {shown!r}; two runs may have written "
                        "it at once. Remove or repair that line")
    return records


def _parse(path: Path) -> tuple[list[dict], list[tuple[int, bytes, str]]]:
    """(records, [(line number, raw line, why) for each corrupt line]); see read_metrics."""
    records, bad = [], []
    if not path.is_file():
        return records, bad
    lines = path.read_bytes().split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn write of a killed run
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as err:
            bad.append((n, line, str(err)))
            continue
        records.append(record)
    return records, bad


class MetricsLog:
    """Appends records to metrics.jsonl (flushed per line, so a killed run keeps what it logged)
    and mirrors numeric fields to TensorBoard when asked. Only rank 0 creates one."""

    def __init__(self, run_dir: Path, tensorboard: bool = False):
        self.path = Path(run_dir) / METRICS
        self.file = None
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "train.tensorboard = true needs the tensorboard package: pip install tensorboard "
                    "(or set train.tensorboard = false)"
                ) from None
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def open(self, keep_until: int | None, say: Callable[[str], None] = print) -> None:
        """Start the file afresh (``keep_until`` None) or keep the records up to that step (resume).
        Corrupt lines are not carried into the rewritten file: ``say`` names them, and their bytes
        are appended to ``metrics.jsonl.corrupt`` beside it, so nothing is lost."""
        kept = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_until is not None:
            records, bad = _parse(self.path)
            kept = [r for r in records if r.get("step", 0) <= keep_until]
            if bad:
                spill = self.path.with_name(self.path.name + ".corrupt")
                with writing(spill), open(spill, "ab") as f:
                    f.write(b"".join(line + b"\n" for _, line, _ in bad))
                nums = ", ".join(str(n) for n, _, _ in bad[:10]) + (" ..." if len(bad) > 10 else "")
                say(f"warning: {self.path}: {len(bad)} corrupt line{'s' if len(bad) > 1 else ''} ({nums}) "
                    f"dropped on resume; their bytes are kept in {spill.name}")
        tmp = self.path.with_name(self.path.name + ".tmp")
        with writing(self.path, cleanup=tmp):
            with open(tmp, "w", encoding="utf-8") as f:  # rewritten whole, then renamed: atomic
                for r in kept:
                    f.write(json.dumps(r) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        self.file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict, prefix: str = "train") -> None:
        if self.file is not None:
            with writing(self.path):
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Progress:
    """A tqdm bar over optimizer steps showing loss and tokens/s (tqdm adds the ETA)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")

    def update(self, n: int = 1, **fields) -> None:
        if self.bar is not None:
            if fields:
                self.bar.set_postfix(fields, refresh=False)
            self.bar.update(n)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
