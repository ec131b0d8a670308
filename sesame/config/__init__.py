"""Typed configs, presets and the registry of named parts."""
from sesame.config.base import Section
from sesame.config.data import DataConfig
from sesame.config.model import ModelConfig
from sesame.config.objective import ObjectiveConfig
from sesame.config.registry import get, names, register
from sesame.config.run import RunConfig, load_config, preset_names, to_toml
from sesame.config.tokenizer import TokenizerConfig
from sesame.config.train import TrainConfig

__all__ = [
    "Section", "DataConfig", "ModelConfig", "ObjectiveConfig", "TokenizerConfig", "TrainConfig",
    "RunConfig", "load_config", "preset_names", "to_toml", "get", "names", "register",
]
