"""`sesame pretrain` with the encoder-decoder objectives: the loss goes down on a tiny
corpus, the saved model generates, and every seq2seq recipe runs a few steps on real text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sesame.config import load_config
from sesame.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[1]
SENTINELS = ", ".join(f"'<extra_id_{i}>'" for i in range(20))
TEXT = "\n\n".join(
    f"The {a} sat on the {b}. A {a} is not a {b}, but the {b} holds the {a}. "
    f"Every {b} has a {a} and every {a} likes a {b}."
    for a in ("cat", "dog", "bird", "fish", "horse", "mouse") for b in ("mat", "chair", "table", "box", "bed")
)
TINY = ["model.hidden=32", "model.layers=1", "model.num_heads=2", "model.head_dim=16", "model.intermediate=64",
        "train.batch_size=8", "train.warmup=2", "train.log_every=1", "train.save_every=1000", "train.eval_every=0",
        "tokenizer.min_frequency=1", "data.workers=1"]
CASES = {
    "t5-span": ("t5-tiny", ["tokenizer.vocab_size=150", f"tokenizer.special_tokens=['<pad>', '</s>', '<unk>', "
                                                       f"{SENTINELS}]"]),
    "bart": ("bart-tiny", ["tokenizer.vocab_size=150", "model.max_positions=64"]),
    "mass": ("bart-tiny", ["tokenizer.vocab_size=150", "model.max_positions=64", "objective.name=mass"]),
}


def losses(run_dir: Path) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x["loss"] for x in lines if "loss" in x and x.get("event") != "eval"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """objective -> (run directory, summary), trained once per module."""
    done = {}

    def get(objective):
        if objective not in done:
            tmp = tmp_path_factory.mktemp(objective)
            corpus = tmp / "tiny.txt"
            corpus.write_text(TEXT * 3)
            preset, extra = CASES[objective]
            run = load_config(preset, [f"data.inputs=[{str(corpus)!r}]", "data.seq_len=32", "train.steps=25",
                                       "train.lr=5e-3", *TINY, *extra])
            done[objective] = (tmp / "run", pretrain(run, tmp / "run", progress=False, say=lambda s: None))
        return done[objective]

    return get


@pytest.mark.parametrize("objective", list(CASES))
def test_pretrain_loss_goes_down(objective, pretrained):
    run_dir, summary = pretrained(objective)
    seen = losses(run_dir)
    assert summary["steps"] == 25 and len(seen) >= 20
    first, last = sum(seen[:3]) / 3, sum(seen[-3:]) / 3
    assert last < 0.75 * first, f"{objective}: loss {first:.3f} -> {last:.3f}"
    from sesame.pipelines import load_any

    model, tok, _ = load_any(run_dir / "model")
    assert model.config.arch == "encoder-decoder" and model.config.family == CASES[objective][0].split("-")[0]


@pytest.mark.parametrize("objective, dataset", [("t5-span", "multi30k"), ("bart", "tatoeba"), ("mass", "multi30k")])
def test_finetune_translation_from_the_cli(objective, dataset, pretrained, shared_data, tmp_path, capsys):
    """A pre-trained t5 / bart / mass model fine-tunes on a translation set out of the box and
    reports BLEU and chrF with their sacrebleu signatures; the translation pipeline loads the result."""
    from sesame.cli.main import main
    from sesame.pipelines import pipeline

    run_dir, _ = pretrained(objective)
    out = tmp_path / "ft"
    code = main(["finetune", str(run_dir / "model"), "--dataset", dataset, "--out", str(out), "--max-train", "64",
                 "--max-eval", "8", "--no-progress", "--set", "train.steps=3", "--set", "train.batch_size=16",
                 "--set", "task.max_target_length=12"])
    assert code in (0, None)
    printed = capsys.readouterr().out
    assert '"bleu"' in printed and '"chrf"' in printed
    summary = json.loads((out / "summary.json").read_text())
    dev = summary["eval"]["dev"]
    assert 0 <= dev["metrics"]["bleu"] <= 1 and 0 <= dev["metrics"]["chrf"] <= 1
    details = json.loads(Path(dev["files"]["json"]).read_text())["details"]
    assert "tok:" in details["bleu"]["signature"] and "nc:6" in details["chrf"]["signature"]
    translate = pipeline("translation", out / "model")
    hyps = translate(["A man rides a bike.", "Two dogs play."])
    assert len(hyps) == 2
    assert main(["translate", str(out / "model"), "A man rides a bike.", "Two dogs play."]) in (0, None)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


@pytest.mark.parametrize("recipe", ["t5-tiny-en", "t5-tiny-zh", "bart-tiny-en", "mass-tiny-en"])
def test_recipes_run(recipe, shared_data, tmp_path):
    """Each recipe as written, on the first lines of its own first input, for 2 steps (Chinese
    without jieba's word boundaries, which only whole-word masking reads: loading jieba costs seconds)."""
    cfg = load_config(ROOT / "recipes" / f"{recipe}.toml")
    src = Path(cfg.data.inputs[0])
    src = src if src.is_absolute() else ROOT / src
    if src.is_dir():
        src = sorted(src.glob("*.txt"))[0]
    sample = tmp_path / "sample.txt"
    lines = src.read_text(encoding="utf-8").splitlines()
    zh = recipe.endswith("-zh")
    sample.write_text("\n".join(lines[:4 if zh else 300]), encoding="utf-8")
    run = load_config(ROOT / "recipes" / f"{recipe}.toml", [
        f"data.inputs=[{str(sample)!r}]", "train.steps=2", "train.batch_size=4", "train.eval_every=0",
        "train.save_every=1000", f"tokenizer.vocab_size={1500 if zh else 400}", "data.workers=1",
        *(["data.segmenter=none"] if zh else [])])
    summary = pretrain(run, tmp_path / "run", progress=False, say=lambda s: None)
    assert summary["steps"] == 2 and summary["loss"] > 0


@pytest.mark.parametrize("objective", ["t5-span", "bart"])
def test_exported_model_generates_like_transformers(objective, pretrained, tmp_path):
    """A sesame-trained t5 / bart exported with its tokenizer names its pad/bos/eos ids and the
    decoder start, so transformers' greedy `generate` gives our tokens exactly."""
    transformers = pytest.importorskip("transformers")
    import torch

    from sesame.generate import generate
    from sesame.models.hf import to_hf
    from sesame.pipelines import load_any

    run_dir, _ = pretrained(objective)
    model, tok, _ = load_any(run_dir / "model")
    with torch.no_grad():  # sharper, more varied outputs than 25 steps give
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.3)
    out = to_hf(model, tmp_path / "hf", tokenizer_dir=run_dir / "model")
    cls = {"t5": transformers.T5ForConditionalGeneration, "bart": transformers.BartForConditionalGeneration}
    hf = cls[model.config.family].from_pretrained(out).eval()
    start = tok.bos_id if tok.bos_id is not None else tok.pad_id
    assert hf.config.decoder_start_token_id == start and hf.config.eos_token_id == tok.eos_id
    src = torch.randint(5, tok.vocab_size, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(src)
    mask[1, 6:] = 0
    ours = generate(model, src, mask, max_new_tokens=8, stop_ids=[tok.eos_id], pad_id=tok.pad_id, start_id=start)
    with torch.no_grad():
        theirs = hf.generate(input_ids=src, attention_mask=mask, max_new_tokens=8, do_sample=False, num_beams=1)
    for row, ref in zip(ours.new_tokens, theirs[:, 1:].tolist()):
        assert row == ref[: len(row)] and all(t == tok.pad_id for t in ref[len(row):])
