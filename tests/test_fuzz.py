"""Fuzzing every reader and loader (issue 10): random bytes, truncations, spliced junk, wrong
types and huge values. Each input ends in a ``SesameError`` or a correct result, never another
exception. Bounded: few examples per target, ``derandomize`` so CI runs the same cases. The
count of cases run is printed at the end of the module (``-s``)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from sesame.config import DataConfig, load_config
from sesame.data.read import iter_texts
from sesame.errors import SesameError
from sesame.models.io import read_weights
from sesame.tasks import readers
from sesame.tokenize import load_tokenizer, train_tokenizer
from sesame.train import checkpoint as ckpt

CASES: Counter = Counter()
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nfuzz cases run: {sum(CASES.values())} {dict(sorted(CASES.items()))}")


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation of ``valid``, or ``valid`` with junk spliced in or bytes flipped."""
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    splice = st.tuples(st.integers(0, len(valid)), st.binary(max_size=40)).map(
        lambda t: valid[:t[0]] + t[1] + valid[t[0]:])
    flip = st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.integers(1, 255)).map(
        lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:] if valid else b"")
    text = st.text(max_size=200).map(lambda s: s.encode("utf-8"))
    return st.one_of(st.binary(max_size=300), cut, splice, flip, text)


def ends_well(fn, *args, **kwargs):
    """``fn``'s result, or None when it refused with a SesameError."""
    try:
        return fn(*args, **kwargs)
    except SesameError:
        return None


def tmpfile(name: str, data: bytes) -> Path:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (d / name).write_bytes(data)
    return d / name


# ---- corpus readers: text, JSONL, TSV, word/tag, CoNLL -------------------------------------
SAMPLES = {
    "text": b"The cat sat.\n\nA second document\nwith two lines.\n",
    "jsonl": b'{"text": "one document"}\n{"text": "two", "id": 3}\n',
    "tsv": b"id\ttext\n1\thello world\n2\tsecond row\n",
    "tagged": "\u4eba\u6c11/n \u65e5\u62a5/n\n\u6211\u4eec/r \u7231/v\n".encode(),
    "conll": b"EU B-ORG\nrejects O\n\nPeter B-PER\n",
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_corpus_readers_end_in_text_or_a_sesame_error(fmt):
    @FUZZ
    @given(mutated(SAMPLES[fmt]))
    def run(data):
        CASES[f"read-{fmt}"] += 1
        path = tmpfile(f"in.{fmt}", data)
        column = "text" if fmt == "tsv" else 0
        cfg = DataConfig(format=fmt, column=column)
        texts = ends_well(lambda: list(iter_texts([str(path)], cfg)))
        assert texts is None or all(isinstance(t, str) and t.strip() for t in texts)

    run()


# ---- labeled readers: TSV, CoNLL, JSON (SQuAD) ------------------------------------------------
LABELED = {
    "tsv": (readers.read_tsv, b"label\ttext\n1\tgood film\n0\tbad film\n"),
    "conll": (readers.read_conll, b"-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\n"),
    "squad": (readers.read_squad, json.dumps({"data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}).encode()),
}


@pytest.mark.parametrize("kind", sorted(LABELED))
def test_labeled_readers_end_in_a_dataset_or_a_sesame_error(kind):
    fn, valid = LABELED[kind]

    @FUZZ
    @given(mutated(valid))
    def run(data):
        CASES[f"labeled-{kind}"] += 1
        ds = ends_well(fn, tmpfile(f"in.{kind}", data))
        assert ds is None or isinstance(ds.examples, list)

    run()


# ---- your own labeled files (`finetune --train FILE`): CSV, TSV, JSONL, JSON, CoNLL ----------------
OWN_FILES = {
    "csv": ("classification", b'text,label\n"a good, long film",pos\nawful plot,neg\n'),
    "tsv": ("classification", b"text\tlabel\ngood film\tpos\nawful plot\tneg\n"),
    "jsonl": ("classification", b'{"text": "good film", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'),
    "json": ("qa", json.dumps([{"question": "Where?", "context": "Paris is in France.",
                                "answers": [{"text": "France", "answer_start": 12}]}]).encode()),
    "conll": ("tagging", b"EU B-ORG\nrejects O\n\nPeter B-PER\nleft O\n"),
}


@pytest.mark.parametrize("fmt", sorted(OWN_FILES))
def test_own_labeled_files_end_in_a_dataset_or_a_sesame_error(fmt):
    from sesame.tasks.files import read_file

    task, valid = OWN_FILES[fmt]

    @FUZZ
    @given(mutated(valid))
    def run(data):
        CASES[f"file-{fmt}"] += 1
        ds = ends_well(read_file, tmpfile(f"train.{fmt}", data), {"task": task})
        assert ds is None or (isinstance(ds.examples, list) and isinstance(ds.labels, list))

    run()


# ---- tokenizer loaders: tokenizer.json, vocab.txt, sentencepiece .model ---------------------
@pytest.fixture(scope="module")
def tokenizer_json() -> bytes:
    return train_tokenizer(texts=["the cat sat on the mat"] * 4, vocab_size=40, min_frequency=1).to_json().encode()


@FUZZ
@given(st.lists(st.text(max_size=60), min_size=1, max_size=6), st.integers(6, 80))
def test_unigram_training_on_any_text_ends_in_a_tokenizer_or_a_sesame_error(texts, size):
    CASES["train-unigram"] += 1
    tok = ends_well(train_tokenizer, texts=texts, kind="unigram", vocab_size=size)
    if tok is not None:
        assert 6 <= tok.vocab_size <= size and isinstance(tok.encode(texts[0]).ids, list)


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.txt", "spm.model"])
def test_tokenizer_loaders_end_in_a_tokenizer_or_a_sesame_error(name, tokenizer_json):
    valid = {"tokenizer.json": tokenizer_json, "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\n",
             "spm.model": b"\n\x0b\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02"}[name]

    @FUZZ
    @given(mutated(valid))
    def run(data):
        CASES[f"tokenizer-{name}"] += 1
        tok = ends_well(load_tokenizer, tmpfile(name, data))
        if tok is not None:
            assert tok.vocab_size >= 0 and isinstance(ends_well(lambda: tok.encode("the cats").ids) or [], list)

    run()


# ---- TOML configs ---------------------------------------------------------------------------
VALUES = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=12), st.booleans(),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
KEYS = st.sampled_from(["model.hidden", "model.layers", "model.vocab_size", "train.lr", "train.clip", "train.steps",
                        "train.betas", "data.seq_len", "tokenizer.vocab_size", "objective.name", "model.kernel",
                        "train.nope", "nosection.key", "model.dropout", "train.keep"])


@FUZZ
@given(st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_config_overrides_end_in_a_config_or_a_sesame_error(pairs):
    CASES["config-set"] += 1

    def literal(v):  # a TOML literal for --set (nan and inf included)
        return repr(v) if isinstance(v, float) else json.dumps(v)

    ends_well(load_config, "test-encoder", [f"{k}={literal(v)}" for k, v in pairs])


@FUZZ
@given(mutated(b'[model]\nhidden = 32\nlayers = 2\n[train]\nlr = 1e-3\nsteps = 10\n'))
def test_toml_config_files_end_in_a_config_or_a_sesame_error(data):
    CASES["config-toml"] += 1
    ends_well(load_config, str(tmpfile("c.toml", data)))


# ---- safetensors, checkpoint state.json, HF config.json ---------------------------------------
@pytest.fixture(scope="module")
def safetensors_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}, str(path))
    return path.read_bytes()


def test_safetensors_reader_ends_in_tensors_or_a_sesame_error(safetensors_bytes):
    @FUZZ
    @given(mutated(safetensors_bytes))
    def run(data):
        CASES["safetensors"] += 1
        out = ends_well(read_weights, tmpfile("w.safetensors", data))
        assert out is None or all(isinstance(v, torch.Tensor) for v in out.values())

    run()


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from test_train import trainer

    root = tmp_path_factory.mktemp("ck")
    trainer(root, steps=1).fit()
    return root / "checkpoints" / "step-000001"


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65), st.floats(), st.text(max_size=8))
JSONISH = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=3),
                                                    st.dictionaries(st.text(max_size=8), c, max_size=3)),
                       max_leaves=8)


def test_checkpoint_state_json_ends_in_a_state_or_a_sesame_error(checkpoint_dir):
    import shutil
    import tempfile

    valid = json.loads((checkpoint_dir / "state.json").read_text())
    keys = st.sampled_from(sorted(valid))

    @FUZZ
    @given(st.one_of(mutated(json.dumps(valid).encode()),
                     st.tuples(keys, JSONISH).map(lambda kv: json.dumps({**valid, kv[0]: kv[1]}).encode()),
                     st.tuples(st.sampled_from(sorted(valid["files"])), JSONISH).map(
                         lambda kv: json.dumps({**valid, "files": {**valid["files"], kv[0]: kv[1]}}).encode())))
    def run(data):
        CASES["state.json"] += 1
        d = Path(tempfile.mkdtemp(prefix="fuzz-ck-")) / "step-000001"
        shutil.copytree(checkpoint_dir, d)
        (d / "state.json").write_bytes(data)
        state = ends_well(ckpt.read_state, d)
        if state is not None:
            path, found, _ = ckpt.find_resumable(d.parent)
            assert path == d and found["step"] == state["step"]

    run()


def test_hf_config_json_ends_in_a_model_or_a_sesame_error(safetensors_bytes):
    from sesame.models.hf import from_hf

    valid = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16}

    @FUZZ
    @given(st.one_of(mutated(json.dumps(valid).encode()),
                     st.tuples(st.sampled_from(sorted(valid)), JSONISH).map(
                         lambda kv: json.dumps({**valid, kv[0]: kv[1]}).encode())))
    def run(data):
        CASES["hf-config.json"] += 1
        path = tmpfile("config.json", data)
        (path.parent / "model.safetensors").write_bytes(safetensors_bytes)
        ends_well(from_hf, path.parent)

    run()
