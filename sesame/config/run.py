"""The whole run: sections, presets, TOML loading and ``--set`` overrides."""
from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from sesame.config.base import Section, closest
from sesame.config.data import DataConfig
from sesame.config.model import ModelConfig
from sesame.config.objective import ObjectiveConfig
from sesame.config.tokenizer import TokenizerConfig
from sesame.config.train import TrainConfig
from sesame.errors import ConfigError


@dataclasses.dataclass
class RunConfig(Section):
    """Everything a run needs. ``generator`` is the second network of ELECTRA."""

    SECTION = "run"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    generator: ModelConfig | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str | None = None) -> "RunConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(
                    f"unknown section [{key}]{closest(key, names)}; valid sections: {', '.join(names)}"
                )
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                section_cls = ModelConfig if f.name == "generator" else f.default_factory().__class__
                kwargs[f.name] = section_cls.from_dict(data[f.name], f.name)
        obj = cls(**kwargs)
        obj.validate()
        return obj

    def validate(self) -> None:
        self._check_objective()
        if self.data.seq_len > self.model.max_positions and self.model.position == "learned":
            raise ConfigError(
                f"data.seq_len = {self.data.seq_len} is longer than the position table "
                f"model.max_positions = {self.model.max_positions}; lower data.seq_len or raise "
                "model.max_positions"
            )


    def _check_objective(self) -> None:
        """Refuse, before any work, a run whose config asks for what no objective part does:
        the wrong architecture, a head nothing trains, a ``[generator]`` nothing reads,
        sentence-pair labels nothing uses (each objective class declares ``archs``, ``heads``,
        ``examples`` and ``uses_generator``)."""
        from sesame.config.registry import get

        names = self.objective.names
        classes = [get("objective", n) for n in names]
        for name, cls in zip(names, classes):
            archs = getattr(cls, "archs", ())
            if archs and self.model.arch not in archs:
                raise ConfigError(
                    f"objective {name!r} needs model.arch in {archs}, but model.arch = "
                    f"{self.model.arch!r}; pick a matching preset or objective"
                )
            wanted = getattr(cls, "examples", ())
            if wanted and self.data.examples not in wanted:
                raise ConfigError(f"objective {name!r} needs data.examples = {wanted[0]!r} (labelled sentence "
                                  f"pairs), but data.examples = {self.data.examples!r}")
        if self.data.examples in ("nsp", "sop") and self.data.examples not in names:
            raise ConfigError(
                f"data.examples = {self.data.examples!r} builds labelled sentence pairs, but no objective reads "
                f"the labels (objective {names}); add {self.data.examples!r} to objective.name or set "
                "data.examples = 'packed'"
            )
        if self.generator is not None and not any(getattr(c, "uses_generator", False) for c in classes):
            raise ConfigError(f"the [generator] section is read only by objective.name = 'electra', but the "
                              f"objective is {names}; drop [generator] or train ELECTRA")
        trained = {h for c in classes for h in getattr(c, "heads", ())}
        idle = [h for h in self.model.heads if h not in trained and h != "pooler"]
        if classes and all(hasattr(c, "heads") for c in classes) and idle:
            raise ConfigError(
                f"model.heads declares {idle} but objective {names} trains only {sorted(trained)}; add the "
                f"objective that trains it (e.g. objective.name = {names + idle}) or drop it from model.heads"
            )


def preset_names() -> list[str]:
    folder = resources.files("sesame") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _preset_text(name: str) -> str:
    path = resources.files("sesame") / "presets" / f"{name}.toml"
    if not path.is_file():
        names = preset_names()
        raise ConfigError(f"unknown preset {name!r}{closest(name, names)}; presets: {', '.join(names)}")
    return path.read_text()


def merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` into a copy of ``base``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve(data: dict, seen: tuple[str, ...] = ()) -> dict:
    """Expand a top-level ``preset = "name"`` key: the preset first, this file over it."""
    data = dict(data)
    name = data.pop("preset", None)
    if name is None:
        return data
    if name in seen:
        raise ConfigError(f"presets include each other in a loop: {' -> '.join(seen + (name,))}")
    base = _resolve(tomllib.loads(_preset_text(name)), seen + (name,))
    return merge(base, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``model.layers=4`` -> (['model', 'layers'], 4). Values are TOML literals;
    a bare word is a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise ConfigError(f"--set {text!r}: name a section and a key, e.g. model.layers=4")
    return path, value


def load_dict(source: str | Path | dict | None) -> dict:
    if source is None:
        return {}
    if isinstance(source, dict):
        return _resolve(source)
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        return _resolve(read_toml(path, "config file", "give a TOML file or a preset name"))
    return _resolve({"preset": str(source)})


def read_toml(path: Path, what: str = "file", hint: str = "check the path") -> dict:
    """A TOML file's table; a missing file, invalid UTF-8 or invalid TOML is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist; {hint}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def load_config(source: str | Path | dict | None = None, overrides: list[str] = ()) -> RunConfig:
    """Load a TOML file or preset name, apply ``section.key=value`` overrides, validate."""
    data = load_dict(source)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section")
        node[path[-1]] = value
    return RunConfig.from_dict(data)


def to_toml(config: Section) -> str:
    import tomli_w

    return tomli_w.dumps(config.to_dict())
