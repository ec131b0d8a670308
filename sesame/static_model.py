"""Static word vectors as a model: the features of the static baseline for fine-tuning.

``static_model(vectors)`` turns word2vec / GloVe / fastText vectors (a word2vec ``.txt`` /
``.bin`` file or a sesame vectors folder) into a ``Model`` of ``arch = "static"`` (one table,
[PAD] [UNK] [CLS] [SEP] first with zero vectors) and a word-level tokenizer that splits text
as ``sesame static train`` did (lowercased when the vectors were; runs of word characters
and single punctuation marks; Chinese text by jieba, with the training run's user dictionary
when the vectors folder records one). ``sesame finetune VECTORS --strategy frozen
--task-encoder bilstm`` then trains the same task model it trains over ELMo or Transformer
features, and its saved tokenizer keeps the segmenter."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer as Backend, models, normalizers, pre_tokenizers

from sesame.config.model import ModelConfig
from sesame.errors import ConfigError, DataError
from sesame.models.model import Model, build_model
from sesame.static.vectors import VECTORS, VOCAB, load_vectors
from sesame.tokenize.chars import has_cjk
from sesame.tokenize.segment import JiebaSegmenter
from sesame.tokenize.tokenizer import Tokenizer

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
log = logging.getLogger(__name__)


def is_vectors(path: str | Path) -> bool:
    """A word2vec text/binary file or a sesame vectors folder (not a model directory)."""
    p = Path(path)
    if p.is_dir():
        return (p / VECTORS).is_file() and (p / VOCAB).is_file() and not (p / "config.toml").is_file()
    if not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.readline(64).split()
    return len(head) == 2 and all(h.isdigit() for h in head)


def static_model(path: str | Path, lowercase: bool | None = None) -> tuple[Model, Tokenizer]:
    """(model, tokenizer) over the vectors at ``path``; ``lowercase`` defaults to whether the
    vocabulary has no upper-case word."""
    vectors = load_vectors(path)
    words = [w for w in vectors.words if w not in SPECIALS]
    if not words:
        raise DataError(f"{path} holds no word vectors")
    segmenter = _segmenter(Path(path)) if sum(has_cjk(w) for w in words[:1000]) > 100 else None
    if lowercase is None:
        lowercase = not any(w != w.lower() for w in words)
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    backend = Backend(models.WordLevel(vocab, unk_token="[UNK]"))
    norm = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    backend.normalizer = normalizers.Sequence(norm)
    if segmenter is None:
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                         pre_tokenizers.Split(Regex(r"[^\w\s]"), behavior="isolated")])
    else:  # the segmenter gives the words (and splits non-Chinese text as above)
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(list(SPECIALS))
    tok = Tokenizer(backend, kind="wordlevel", segmenter=segmenter)
    matrix = np.zeros((len(vocab), vectors.dim), dtype=np.float32)
    rows = [vectors.index[w] for w in vocab if w not in SPECIALS]
    matrix[len(SPECIALS):] = vectors.matrix[rows]
    config = ModelConfig(family="static", arch="static", vocab_size=len(vocab), hidden=vectors.dim, layers=1,
                         position="none", type_vocab_size=0, heads=[], pad_token_id=0, dropout=0.1)
    model = build_model(config)
    with torch.no_grad():
        model.body.embed.tokens.weight.copy_(torch.from_numpy(matrix))
    return model.eval(), tok


def _segmenter(path: Path) -> JiebaSegmenter | None:
    """jieba as the vectors' training run used it (its ``config.json`` beside the vectors
    names the segmenter and user dictionary); default jieba for a bare vectors file; none
    for vectors trained on unsegmented Chinese (split as training split it)."""
    settings = path / "config.json" if path.is_dir() else None
    static = {}
    if settings is not None and settings.is_file():
        static = json.loads(settings.read_text(encoding="utf-8")).get("static", {})
    how = static.get("segmenter", "auto")
    if how == "none":
        return None
    if how == "gold" or (how == "auto" and static.get("format") in ("tagged", "conll")):
        log.warning("%s: the vectors come from gold-segmented words; the model's tokenizer segments "
                    "new text with jieba, whose words differ in places", path)
    user_dict = static.get("user_dict")
    if user_dict and not Path(user_dict).is_file():
        raise ConfigError(f"{path} was trained with the jieba user dictionary {user_dict!r}, which no longer "
                          "exists; restore it so the tokenizer splits text as training did")
    return JiebaSegmenter(user_dict or None)
