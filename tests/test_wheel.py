"""The built wheel works outside this checkout: build it, install it into a fresh virtual
environment in a temporary folder, and from there run `sesame --help`, the demo at a tiny
size, a fine-tune on a CSV written here (random init over a vocabulary written here, so
nothing is downloaded) and `sesame classify` on the result.

The fresh environment sees this interpreter's site-packages through a ``.pth`` line, so
torch and the other dependencies are not reinstalled; sesame itself comes only from the
wheel (a directory named in a ``.pth`` is put on the path without running its own ``.pth``
files, so an editable install of the checkout stays inert). The test checks that the
imported sesame is the wheel's."""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_wheel_works_outside_the_checkout(tmp_path):
    pytest.importorskip("setuptools")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SESAME_DATA")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    build = tmp_path / "build"
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "tests", "docs", "*.egg-info",
                                                               "__pycache__", "build", "dist"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(build)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("sesame-*.whl")
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(home)
    py = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., after the venv's own
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", str(wheel)], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run([py, "-c", "import sesame; print(sesame.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(home), where  # the wheel, not the checkout
    sesame = [str(home / "bin" / "sesame")]
    assert "fine-tune" in run(sesame + ["--help"], work, env)
    out = run(sesame + ["demo", "--steps", "2", "--no-progress", "--set", "train.eval_every=0", "--set",
                        "train.batch_size=4", "--set", "tokenizer.vocab_size=300"], work, env)
    assert (work / "runs" / "demo" / "model" / "config.toml").is_file(), out
    (work / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film",
                                               "a", "very", "plot"]) + "\n")
    rows = [("a good film", "pos"), ("a bad plot", "neg"), ("very good", "pos"), ("very bad", "neg")] * 4
    (work / "reviews.csv").write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n")
    run(sesame + ["finetune", "--init", "random", "--preset", "test-encoder", "--tokenizer", "vocab.txt", "--train",
                  "reviews.csv", "--task", "classification", "--out", "runs/reviews", "--set", "train.steps=3",
                  "--set", "train.batch_size=4", "--no-progress"], work, env)
    out = run(sesame + ["classify", "runs/reviews/model", "a good film"], work, env)
    assert out.split("\t")[0] in ("pos", "neg")
