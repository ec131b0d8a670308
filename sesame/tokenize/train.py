"""Train WordPiece, byte-level BPE, Unigram, character and letter-trigram vocabularies, each
reproducible byte for byte. ``tokenizers`` trains BPE; WordPiece, character and trigram
vocabularies are learned by our own code and Unigram by SentencePiece on one thread (see
tokenize.unigram), because ``tokenizers``' WordPiece and Unigram trainers break ties in hash
order. Every vocabulary is served by ``tokenizers``."""
from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as Backend

from sesame.config.tokenizer import TokenizerConfig
from sesame.errors import TokenizerError
from sesame.tokenize import hashing
from sesame.tokenize.chars import CJK_CLASS, is_cjk
from sesame.tokenize.tokenizer import ROLE_TOKENS, Tokenizer, template_processor
from sesame.tokenize.unigram import learn_pieces
from sesame.tokenize.wordpiece import count_words, learn_vocab


def expand_files(patterns: str | Path | Sequence[str | Path], suffixes: Sequence[str] = (".txt",)) -> list[Path]:
    """Files, directories (searched recursively for ``suffixes``) and glob patterns ->
    a sorted, de-duplicated list of files."""
    if isinstance(patterns, (str, Path)):
        patterns = [patterns]
    out: list[Path] = []
    for pat in patterns:
        path = Path(pat)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes
                          and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            out.append(path)
        elif glob.has_magic(str(pat)):
            found = sorted(Path(p) for p in glob.glob(str(pat), recursive=True) if os.path.isfile(p))
            if not found:
                raise TokenizerError(f"the pattern {str(pat)!r} matches no files")
            out += found
        else:
            raise TokenizerError(f"input {str(pat)!r} does not exist; give files, directories or globs")
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    if not unique:
        raise TokenizerError(f"no {'/'.join(suffixes)} files found in {', '.join(map(str, patterns))}")
    return unique


def iter_lines(files: Iterable[Path]) -> Iterator[str]:
    """Lines of text files, invalid UTF-8 replaced (training only needs statistics)."""
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    yield line


def build_normalizer(cfg: TokenizerConfig) -> normalizers.Normalizer | None:
    parts: list[normalizers.Normalizer] = []
    form = cfg.unicode_form
    if form != "none":
        parts.append({"nfc": normalizers.NFC, "nfd": normalizers.NFD, "nfkc": normalizers.NFKC,
                      "nfkd": normalizers.NFKD}[form]())
    if cfg.kind in ("wordpiece", "char", "trigram"):
        parts.append(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=cfg.cjk_chars,
                                                strip_accents=cfg.strip_accents, lowercase=cfg.do_lowercase))
    else:
        if cfg.strip_accents:
            parts += [normalizers.NFD(), normalizers.StripAccents()]
        if cfg.do_lowercase:
            parts.append(normalizers.Lowercase())
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else normalizers.Sequence(parts)


def build_pre_tokenizer(cfg: TokenizerConfig) -> pre_tokenizers.PreTokenizer:
    cjk = pre_tokenizers.Split(Regex(CJK_CLASS), behavior="isolated")
    if cfg.kind == "bpe":
        byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        return pre_tokenizers.Sequence([cjk, byte]) if cfg.cjk_chars else byte
    if cfg.kind == "unigram":
        meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        return pre_tokenizers.Sequence([meta, cjk]) if cfg.cjk_chars else meta
    return pre_tokenizers.BertPreTokenizer()


def _unk(cfg: TokenizerConfig) -> str | None:
    for tok in cfg.specials:
        if tok in ROLE_TOKENS["unk"]:
            return tok
    return None


def train_tokenizer(files: str | Path | Sequence[str | Path] | None = None,
                    config: TokenizerConfig | None = None, *, texts: Iterable[str] | None = None,
                    show_progress: bool = False, **overrides) -> Tokenizer:
    """Train a vocabulary on ``files`` (files, directories, globs) or on ``texts``.

    ``config`` fields may be overridden by keyword: ``train_tokenizer(paths, kind="bpe",
    vocab_size=8000)``."""
    cfg = config or TokenizerConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    else:
        cfg.validate()
    if texts is None:
        if files is None:
            files = cfg.files
        if not files:
            raise TokenizerError("no training text: give files, directories or globs (or texts=...)")
        texts = iter_lines(expand_files(files))
    unk = _unk(cfg)
    if cfg.kind != "bpe" and unk is None:
        raise TokenizerError(
            f"a {cfg.kind} vocabulary needs an unknown token among special_tokens, e.g. "
            f"'[UNK]' or '<unk>'; got {cfg.specials}"
        )
    normalizer = build_normalizer(cfg)
    pre = build_pre_tokenizer(cfg)
    if cfg.kind in ("char", "trigram", "wordpiece", "unigram"):
        backend = _train_counted(cfg, texts, normalizer, pre, unk)
    else:
        backend = _train_bpe(cfg, texts, normalizer, pre, show_progress)
    tok = Tokenizer(backend, kind=cfg.kind)
    processor = template_processor(tok)
    if processor is not None:
        backend.post_processor = processor
    return Tokenizer(backend, kind=cfg.kind)


def _train_bpe(cfg, texts, normalizer, pre, show_progress) -> Backend:
    """Byte-level BPE, trained by ``tokenizers`` (its merges are reproducible)."""
    backend = Backend(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=cfg.specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    decoder = decoders.ByteLevel()
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.pre_tokenizer = pre
    backend.decoder = decoder
    try:
        backend.train_from_iterator(texts, trainer)
    except Exception as err:  # the Rust trainer raises plain Exceptions
        hint = f"; raise tokenizer.vocab_size (now {cfg.vocab_size})" if "not large enough" in str(err) else ""
        raise TokenizerError(f"training the bpe vocabulary failed: {err}{hint}") from None
    if backend.get_vocab_size() <= len(cfg.specials):
        raise TokenizerError("the training text produced no vocabulary; check the input files")
    return backend


def _words(texts, normalizer, pre) -> Iterator[str]:
    for text in texts:
        norm = normalizer.normalize_str(text) if normalizer is not None else text
        for word, _ in pre.pre_tokenize_str(norm):
            yield word


def _train_counted(cfg, texts, normalizer, pre, unk) -> Backend:
    """Vocabularies learned from word counts, reproducible byte for byte: WordPiece (see
    tokenize.wordpiece), Unigram (tokenize.unigram), characters and letter trigrams (count,
    keep the most frequent)."""
    vocab = {tok: i for i, tok in enumerate(cfg.specials)}

    def add(token: str) -> None:
        if token not in vocab and len(vocab) < cfg.vocab_size:
            vocab[token] = len(vocab)

    if cfg.kind == "wordpiece":  # our own trainer: tokenizers' breaks ties in hash order (not reproducible)
        words = count_words(_words(texts, normalizer, pre))
        vocab = learn_vocab(words, cfg.vocab_size, list(cfg.specials), cfg.min_frequency, cfg.alphabet_limit)
        model = models.WordPiece(vocab=vocab, unk_token=unk, continuing_subword_prefix="##",
                                 max_input_chars_per_word=100)
        decoder = decoders.WordPiece(prefix="##")
    elif cfg.kind == "unigram":  # sentencepiece on one thread: tokenizers' trainer breaks ties in hash order
        pieces = learn_pieces(count_words(_words(texts, normalizer, pre)), cfg.vocab_size, list(cfg.specials),
                              cfg.max_piece_length)
        vocab = {p: i for i, (p, _) in enumerate(pieces)}
        model = models.Unigram(pieces, unk_id=vocab[unk], byte_fallback=False)
        decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    elif cfg.kind == "char":
        merged: Counter = Counter()
        for word in _words(texts, normalizer, pre):
            merged.update(word)
        for ch, n in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])):
            if n < cfg.min_frequency:
                break
            add(ch)
            if not (cfg.cjk_chars and is_cjk(ch)):
                add("##" + ch)
        model = models.WordPiece(vocab=vocab, unk_token=unk, continuing_subword_prefix="##",
                                 max_input_chars_per_word=100)
        decoder = decoders.WordPiece(prefix="##")
    else:
        counts = hashing.count_trigrams(_words(texts, normalizer, pre))
        for tri, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if n < cfg.min_frequency:
                break
            add(tri)
        model = models.WordLevel(vocab=vocab, unk_token=unk)
        decoder = None
    if len(vocab) <= len(cfg.specials):
        raise TokenizerError("the training text produced no vocabulary; check the input files")
    backend = Backend(model)
    backend.add_special_tokens(cfg.specials)
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.pre_tokenizer = pre
    if decoder is not None:
        backend.decoder = decoder
    return backend


def build_tokenizer(config: TokenizerConfig, *, show_progress: bool = False) -> Tokenizer:
    """The tokenizer a config asks for: ``path`` loads one, otherwise ``files`` train one."""
    if config.path:
        from sesame.tokenize.load import load_tokenizer

        return load_tokenizer(config.path)
    return train_tokenizer(config.files, config, show_progress=show_progress)
