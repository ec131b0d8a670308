"""``StaticConfig``: the settings of one static-embedding run (word2vec, GloVe, fastText)."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section, choice
from sesame.errors import ConfigError

METHODS = ("word2vec", "glove", "fasttext")


@dataclasses.dataclass
class StaticConfig(Section):
    """One run of ``sesame static train``. word2vec and fastText share the skip-gram / CBOW
    trainer; fastText adds hashed character n-grams to the input side."""

    SECTION = "static"
    method: str = "word2vec"  # word2vec | glove | fasttext
    arch: str = "sg"  # sg (skip-gram) | cbow  (word2vec, fasttext)
    loss: str = "ns"  # ns (negative sampling) | hs (hierarchical softmax)
    dim: int = 100
    window: int = 5  # maximum distance; word2vec/fastText draw each centre's window from 1..window
    negative: int = 5  # noise words per positive pair, drawn from unigram ** noise_power
    noise_power: float = 0.75
    # 0: every pair draws its own `negative` noise words (word2vec). K > 0: each batch draws K
    # noise words shared by all its pairs, each weighted negative / K (the same expected
    # gradient; the noise part becomes two matrix products, which is faster in torch)
    shared_negatives: int = 0
    sample: float = 1e-3  # frequent-word subsampling threshold t (0: off)
    min_count: int = 5
    max_vocab: int = 0  # keep at most this many words, most frequent first (0: all)
    epochs: int = 5
    lr: float = 0.025  # start learning rate (word2vec/fastText: SGD; GloVe: AdaGrad)
    min_lr: float = 0.0001  # word2vec/fastText: linear decay from lr to min_lr over the run
    batch: int = 1024  # pairs (skip-gram, GloVe) or centre words (CBOW) per update, across all workers
    chunk_words: int = 200_000  # corpus words per chunk (windows, subsampling, checkpoints)
    seed: int = 0
    # word2vec/fastText: processes training each chunk's parts at once on shared vectors (Hogwild).
    # 1 is bit-reproducible (and resumes exactly); more is faster but not bit-reproducible
    workers: int = 1
    # fastText
    minn: int = 3
    maxn: int = 6
    buckets: int = 2_000_000
    # GloVe
    x_max: float = 100.0
    alpha: float = 0.75
    cooc_buffer: int = 20_000_000  # co-occurrence entries held in memory before a shard flush
    cooc_shards: int = 8
    # input words
    lowercase: bool = True
    punctuation: bool = False  # keep tokens made only of punctuation
    segmenter: str = "auto"  # Chinese words: auto (gold words of tagged input, else jieba) | jieba | gold | none
    user_dict: str | None = None
    format: str = "auto"  # input format, as for `sesame data prepare`
    text_field: str = "text"
    checkpoint_seconds: float = 300.0  # save a resumable checkpoint at most this often (and after each epoch)

    def validate(self) -> None:
        choice("static.method", self.method, METHODS)
        choice("static.arch", self.arch, ("sg", "cbow"))
        choice("static.loss", self.loss, ("ns", "hs"))
        choice("static.segmenter", self.segmenter, ("auto", "jieba", "gold", "none"))
        for name in ("dim", "window", "epochs", "batch", "chunk_words", "min_count", "cooc_shards", "workers"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"static.{name} = {getattr(self, name)} must be positive")
        if self.negative < 0 or (self.loss == "ns" and self.negative == 0):
            raise ConfigError("static.negative must be >= 1 with loss = 'ns' (or use loss = 'hs')")
        if self.shared_negatives < 0 or (self.shared_negatives and self.loss != "ns"):
            raise ConfigError("static.shared_negatives must be >= 0 and needs loss = 'ns'")
        if not 0.0 <= self.sample < 1.0:
            raise ConfigError(f"static.sample = {self.sample} must be in [0, 1); 0 turns subsampling off")
        if self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            raise ConfigError("static.lr must be positive and static.min_lr in [0, lr]")
        if self.method == "fasttext" and not (1 <= self.minn <= self.maxn and self.buckets > 0):
            raise ConfigError("fastText needs 1 <= static.minn <= static.maxn and static.buckets > 0")
        if self.method == "glove" and (self.x_max <= 0 or self.alpha <= 0):
            raise ConfigError("GloVe needs static.x_max > 0 and static.alpha > 0")
        if self.method == "glove" and (self.arch != "sg" or self.loss != "ns"):
            raise ConfigError("static.arch and static.loss are word2vec/fastText settings; GloVe has its own "
                              "objective (leave them at their defaults)")


def static_preset_names() -> list[str]:
    from importlib import resources

    folder = resources.files("sesame") / "presets" / "static"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_static_config(source: str | None = None, overrides: list[str] = (), **flags) -> StaticConfig:
    """A ``[static]`` section from a TOML file or a preset name (``word2vec-sg``,
    ``word2vec-cbow``, ``glove``, ``fasttext``), then ``static.key=value`` overrides, then
    the non-None ``flags`` (command-line options)."""
    import tomllib
    from importlib import resources
    from pathlib import Path

    from sesame.config.base import closest
    from sesame.config.run import parse_override

    data: dict = {}
    if source is not None:
        path = Path(source)
        if path.suffix == ".toml" or path.exists():
            if not path.is_file():
                raise ConfigError(f"config file {source!r} does not exist; give a TOML file or a preset name")
            text = path.read_text(encoding="utf-8")
        else:
            preset = resources.files("sesame") / "presets" / "static" / f"{source}.toml"
            if not preset.is_file():
                names = static_preset_names()
                raise ConfigError(f"unknown static preset {source!r}{closest(source, names)}; "
                                  f"presets: {', '.join(names)}")
            text = preset.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source}: invalid TOML: {err}") from None
        extra = [k for k in data if k != "static"]
        if extra:
            raise ConfigError(f"{source}: a static-embedding config has only a [static] section, not {extra}")
        data = dict(data.get("static", {}))
    for text in overrides:
        path_, value = parse_override(text)
        if path_[0] != "static" or len(path_) != 2:
            raise ConfigError(f"--set {text!r}: static settings are static.KEY=VALUE")
        data[path_[1]] = value
    data.update({k: v for k, v in flags.items() if v is not None})
    return StaticConfig.from_dict(data)
