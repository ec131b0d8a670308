"""Typed configs: strict keys, build-time validation, presets, overrides."""
import pytest

from sesame.config import ModelConfig, RunConfig, get, load_config, preset_names, to_toml
from sesame.config.run import parse_override
from sesame.errors import ConfigError


def test_unknown_key_names_key_section_and_closest():
    with pytest.raises(ConfigError) as err:
        load_config({"model": {"hiden": 64}})
    msg = str(err.value)
    assert "`hiden`" in msg and "[model]" in msg and "did you mean `hidden`" in msg


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"unknown section \[modle\].*did you mean `model`"):
        load_config({"modle": {}})


@pytest.mark.parametrize("override, fragment", [
    ("model.num_heads=5", "does not divide model.hidden"),
    ("model.num_kv_heads=5", "must divide model.num_heads"),
    ("model.arch=\"decoder\"", "need a bidirectional encoder"),
    ("data.seq_len=4096", "longer than the position table"),
    ("model.position=\"rotery\"", "did you mean `rotary`"),
    ("model.layers=0", "must be positive"),
    ("model.hidden=\"big\"", "must be an integer"),
    ("model.dropout=1.5", "dropout"),
    ("objective.name=\"clm\"", "objective 'clm' needs model.arch"),
    ("objective.name=\"mlmm\"", "did you mean `mlm`"),
])
def test_impossible_combinations_fail_when_built(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("bert-tiny", [override])


def test_encoder_with_lm_head_is_refused():
    with pytest.raises(ConfigError, match="sees the future"):
        ModelConfig.from_dict({"heads": ["lm"]})


def test_overrides_parse_toml_literals():
    assert parse_override("model.layers=4") == (["model", "layers"], 4)
    assert parse_override("model.heads=[\"mlm\",\"nsp\"]") == (["model", "heads"], ["mlm", "nsp"])
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("model.activation=gelu") == (["model", "activation"], "gelu")
    cfg = load_config("bert-tiny", ["model.layers=4", "train.lr=1e-3"])
    assert cfg.model.layers == 4 and cfg.train.lr == 1e-3
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("layers4")


def test_presets_inherit_and_round_trip(tmp_path):
    tiny = load_config("bert-tiny")
    assert tiny.model.family == "bert" and tiny.model.hidden == 128 and tiny.model.type_vocab_size == 2
    for name in preset_names():
        cfg = load_config(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(to_toml(cfg))
        assert load_config(path) == cfg
    assert load_config("electra-small").generator.hidden == 64


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nhidden = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    user = tmp_path / "user.toml"
    user.write_text('preset = "gpt-tiny"\n[model]\nlayers = 2\n')
    cfg = load_config(user)
    assert cfg.model.layers == 2 and cfg.model.arch == "decoder"


def test_registry_lists_parts_and_suggests():
    assert get("attention", "full").name == "full"
    with pytest.raises(ConfigError, match="did you mean `rotary`"):
        get("position", "rotari")
    assert isinstance(RunConfig().model, ModelConfig)
