"""Models: presets, heads and ties, save/load with reports, bad input."""
import pytest
import torch

from sesame.config import ModelConfig, load_config
from sesame.errors import CheckpointError, SesameError, ShapeError
from sesame.models import build_model, load_model, save_model
from sesame.models.io import WEIGHTS

PUBLISHED = {  # parameter counts of the published models, with their pre-training heads
    "bert-base": 110.1e6, "gpt2-small": 124.4e6, "albert-base": 11.8e6, "distilbert-base": 67.0e6,
    "electra-small": 13.5e6, "roberta-base": 124.7e6,
}


@pytest.mark.parametrize("name, count", PUBLISHED.items())
def test_presets_have_published_sizes(name, count):
    with torch.device("meta"):
        model = build_model(load_config(name).model)
    assert abs(model.num_parameters() - count) / count < 0.005


def small(**kw):
    base = dict(vocab_size=60, hidden=32, layers=2, num_heads=4, intermediate=40, max_positions=32,
                heads=["mlm", "nsp"], dropout=0.0, attention_dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def test_heads_tie_to_embedding_and_survive_save_load(tmp_path):
    model = build_model(small()).eval()
    assert model.heads["mlm"].decoder.weight is model.body.embed.tokens.weight
    ids = torch.randint(0, 60, (2, 9))
    before = model(ids)
    save_model(model, tmp_path / "m")
    assert not (tmp_path / "m.tmp").exists()
    loaded, report = load_model(tmp_path / "m")
    loaded.eval()
    assert loaded.heads["mlm"].decoder.weight is loaded.body.embed.tokens.weight
    assert report.tied == ["heads.mlm.decoder.weight"] and not report.missing and not report.unexpected
    after = loaded(ids)
    for name in before.logits:
        torch.testing.assert_close(after.logits[name], before.logits[name], atol=0, rtol=0)


def test_untied_lm_head_is_saved(tmp_path):
    cfg = small(arch="decoder", heads=["lm"], prenorm=True, tie_embeddings=False)
    model = build_model(cfg)
    assert model.heads["lm"].decoder.weight is not model.body.embed.tokens.weight
    save_model(model, tmp_path / "d")
    loaded, report = load_model(tmp_path / "d")
    assert report.tied == [] and torch.equal(loaded.heads["lm"].decoder.weight, model.heads["lm"].decoder.weight)


def test_missing_parameters_fail_unless_allowed(tmp_path):
    save_model(build_model(small(heads=["mlm"])), tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"lacks 4 trained parameters.*allow_missing"):
        load_model(tmp_path / "m", config=small(heads=["mlm", "nsp"]))
    model, report = load_model(tmp_path / "m", config=small(heads=["mlm", "nsp"]), allow_missing=True)
    assert set(report.missing) == {"heads.pooler.dense.weight", "heads.pooler.dense.bias",
                                   "heads.nsp.classifier.weight", "heads.nsp.classifier.bias"}
    assert "missing (4)" in str(report)


def test_unexpected_and_wrong_shapes_are_named(tmp_path):
    save_model(build_model(small()), tmp_path / "m")
    with pytest.raises(CheckpointError, match="does not use.*strict=False"):
        load_model(tmp_path / "m", config=small(heads=["mlm"]))
    _, report = load_model(tmp_path / "m", config=small(heads=["mlm"]), strict=False)
    assert "unexpected (4)" in str(report)
    with pytest.raises(CheckpointError, match=r"body.embed.tokens.weight has shape \(60, 32\).*\(61, 32\)"):
        load_model(tmp_path / "m", config=small(vocab_size=61))


def test_bad_paths_and_truncated_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.toml"):
        load_model(tmp_path / "empty")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="sesame convert --from-hf"):
        load_model(tmp_path / "hf")
    save_model(build_model(small()), tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "m")


def test_bad_inputs_raise_sesame_errors():
    model = build_model(small())
    with pytest.raises(ShapeError, match="id 60, outside the table of 60"):
        model(torch.tensor([[1, 2, 60]]))
    with pytest.raises(ShapeError, match="id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(ShapeError, match="token_type_ids contains id 2"):
        model(torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))
    with pytest.raises(ShapeError, match=r"33 tokens is longer than the position table \(model.max_positions = 32\)"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\(batch, length\)"):
        model(torch.zeros(33, dtype=torch.long))
    with pytest.raises(ShapeError, match="attention_mask has shape"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(ShapeError, match="integer token ids"):
        model(torch.zeros(2, 5))
    assert issubclass(ShapeError, SesameError)


def test_select_computes_token_heads_on_chosen_positions_only():
    model = build_model(small()).eval()
    ids = torch.randint(0, 60, (2, 9))
    select = torch.zeros(2, 9, dtype=torch.bool)
    select[0, 3] = select[1, 5] = True
    full = model(ids).logits["mlm"]
    some = model(ids, select=select).logits["mlm"]
    assert some.shape == (2, 60)
    torch.testing.assert_close(some, full[select])
