"""Evidence files for the benchmark and recipe scripts: what a script measured, written by
that script as JSON (atomically) next to the command that made it, the software versions,
the thread count and the machine's load, so a README table can point at it."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "docs" / "evidence"


def context() -> dict:
    """The run's command line and setting (call at the start; ``save`` adds the end)."""
    import torch

    return {"command": " ".join(["python", *sys.argv]), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_average_start": round(os.getloadavg()[0], 2)}


def save(path: str | Path, setting: dict, results: dict) -> Path:
    """Write ``{**setting, load_average_end, **results}`` to ``path`` (a temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**setting, "load_average_end": round(os.getloadavg()[0], 2), **results}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path
