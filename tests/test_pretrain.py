"""Pre-training end to end on a tiny corpus: tokenizer, shards, objective,
trainer, model directory, resume, pipelines and LM evaluation."""
import json

import pytest
import torch

from sesame.cli.main import main
from sesame.config import load_config
from sesame.errors import ConfigError
from sesame.evaluate import evaluate_lm
from sesame.pipelines import load_any, pipeline
from sesame.runs import run_tokenizer
from sesame.pretrain import pretrain

TEXT = "\n\n".join(
    f"The {a} sat on the {b}. A {a} is not a {b}, but the {b} holds the {a}. "
    f"Every {b} has a {a} and every {a} likes a {b}."
    for a in ("cat", "dog", "bird", "fish", "horse", "mouse") for b in ("mat", "chair", "table", "box", "bed")
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(TEXT * 4)
    return path


def tiny_run(corpus, *extra):
    return load_config("test-encoder", [
        f"data.inputs=[{str(corpus)!r}]", "data.seq_len=32", "tokenizer.vocab_size=120", "tokenizer.min_frequency=1",
        "train.steps=12", "train.batch_size=8", "train.lr=3e-3", "train.warmup=2", "train.log_every=2",
        "train.save_every=6", "train.eval_every=6", "model.max_positions=32", *extra,
    ])


def test_pretrain_mlm_end_to_end_and_resume(corpus, tmp_path):
    run = tiny_run(corpus)
    summary = pretrain(run, tmp_path / "run", progress=False, say=lambda s: None)
    assert summary["steps"] == 12 and summary["loss"] < 4.6  # ln(120) = 4.79 at random
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "config.toml").is_file() and (model_dir / "tokenizer.json").is_file()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(x.get("event") == "eval" for x in lines)
    fill = pipeline("fill-mask", model_dir)
    top = fill("the cat sat on the [MASK].", top_k=3)
    assert len(top) == 3 and all(0 <= t["score"] <= 1 for t in top)
    # a training checkpoint loads like a model directory (its run's config and tokenizer)
    final, _, _ = load_any(model_dir)
    at12, tok, _ = load_any(tmp_path / "run" / "checkpoints" / "step-000012")
    assert tok.vocab_size == fill.tokenizer.vocab_size
    assert all(torch.equal(v, at12.state_dict()[k]) for k, v in final.state_dict().items())
    at6, _, _ = load_any(tmp_path / "run" / "checkpoints" / "step-000006")
    assert not torch.equal(at6.body.embed.tokens.weight, final.body.embed.tokens.weight)
    assert pipeline("fill-mask", tmp_path / "run" / "checkpoints" / "step-000006")("the [MASK] sat.", top_k=2)
    shared = tmp_path / "shared-tokenizer-run"  # a run that read its tokenizer from tokenizer.path
    shared.mkdir()
    config = {"tokenizer": {"path": str(tmp_path / "run" / "tokenizer.json")}}
    assert run_tokenizer(shared, config) == tmp_path / "run" / "tokenizer.json"
    with pytest.raises(Exception, match="--resume|checkpoints"):
        pretrain(run, tmp_path / "run", progress=False, say=lambda s: None)
    longer = tiny_run(corpus, "train.steps=14")
    again = pretrain(longer, tmp_path / "run", resume=True, allow_config_change=True, progress=False,
                     say=lambda s: None)
    assert again["start_step"] == 12 and again["steps"] == 14
    scores = evaluate_lm(model_dir, [str(corpus)], seq_len=32, batch_size=8)
    assert scores["objective"] == "mlm" and 0 < scores["accuracy"] <= 1 and scores["perplexity"] < 120


def test_pretrain_clm_and_generation(corpus, tmp_path):
    run = load_config("test-decoder", [
        f"data.inputs=[{str(corpus)!r}]", "data.seq_len=32", "tokenizer.kind=bpe", "tokenizer.vocab_size=300",
        "tokenizer.min_frequency=1", "train.steps=10", "train.batch_size=8", "train.lr=3e-3", "train.warmup=2",
        "model.max_positions=64",
    ])
    summary = pretrain(run, tmp_path / "gpt", progress=False, say=lambda s: None)
    assert summary["loss"] < 5.7  # ln(300) = 5.70
    gen = pipeline("text-generation", tmp_path / "gpt" / "model")
    out = gen("The cat", max_new_tokens=5)
    ids = gen.tokenizer.encode("The cat").ids  # greedy by hand: the argmax of the model's next-token logits
    for _ in range(5):
        with torch.no_grad():
            nxt = int(gen.model(torch.tensor([ids])).logits["lm"][0, -1].argmax())
        if nxt == gen.tokenizer.eos_id:
            break
        ids.append(nxt)
    assert out == gen.tokenizer.decode(ids[len(gen.tokenizer.encode("The cat").ids):]) and out
    scores = evaluate_lm(tmp_path / "gpt" / "model", [str(corpus)], seq_len=32)
    assert scores["objective"] == "clm" and scores["perplexity"] < 300
    # one document per file: each window reads across the blank lines (paragraphs), so the
    # same text scores differently than with a document per paragraph (the default here)
    whole = evaluate_lm(tmp_path / "gpt" / "model", [str(corpus)], seq_len=32, doc_boundary="file")
    assert whole["perplexity"] < 300 and whole["loss"] != scores["loss"]


def test_pretrain_refuses_bad_setups(corpus, tmp_path):
    with pytest.raises(ConfigError, match="objective 'clm' needs model.arch"):
        tiny_run(corpus, 'objective.name="clm"')
    with pytest.raises(ConfigError, match="nothing to train a tokenizer on"):
        pretrain(load_config("test-encoder"), tmp_path / "y", progress=False, say=lambda s: None)


def test_pipelines_accept_hugging_face_directories(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "."]
    vocab = tmp_path / "hf" / "vocab.txt"
    vocab.parent.mkdir()
    vocab.write_text("\n".join(words) + "\n")
    tokenizers.BertWordPieceTokenizer(str(vocab)).save(str(tmp_path / "hf" / "tokenizer.json"))
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=40, max_position_embeddings=32)
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = pipeline("fill-mask", tmp_path / "hf")("the cat sat on the [MASK] .", top_k=2)
    ids = torch.tensor([[2, 5, 6, 7, 8, 5, 4, 10, 3]])
    with torch.no_grad():
        probs = hf(input_ids=ids).logits[0, 6].softmax(-1)
    assert [t["id"] for t in ours] == probs.topk(2).indices.tolist()
    assert abs(ours[0]["score"] - probs.max().item()) < 1e-5
    assert main(["fill-mask", str(tmp_path / "hf"), "the cat sat on the [MASK] ."]) == 0
    assert "the cat sat" in capsys.readouterr().out
    vec = pipeline("feature-extraction", tmp_path / "hf")(["the cat", "the mat ."], pooling="cls")
    assert vec.shape == (2, 32)
