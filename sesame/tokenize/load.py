"""Load existing vocabularies: Hugging Face ``tokenizer.json``, BERT ``vocab.txt``,
GPT-2 vocab + merges (``vocab.json`` or one token per line), SentencePiece ``.model``."""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as Backend

from sesame.errors import TokenizerError
from sesame.tokenize import spm
from sesame.tokenize.tokenizer import ROLE_TOKENS, Tokenizer, template_processor

ROLE_NAMES = {name for names in ROLE_TOKENS.values() for name in names}


def load_tokenizer(path: str | Path, *, merges: str | Path | None = None,
                   lowercase: bool | None = None, xlnet: bool = False) -> Tokenizer:
    """Load a tokenizer from ``path``: a directory (``tokenizer.json``, ``vocab.txt``,
    ``vocab.json`` + ``merges.txt`` or one ``.model``), or one of those files.

    A GPT-2 vocabulary needs its merges: pass ``merges`` or keep the file beside the
    vocabulary with ``vocab`` replaced by ``merges`` in its name. ``lowercase`` overrides
    the cased/uncased guess for a BERT ``vocab.txt``. ``xlnet``: a sentencepiece
    ``.model`` is read as XLNet's tokenizer (see ``from_sentencepiece``); the other
    formats carry their own normalisation and template."""
    path = Path(path)
    if path.is_dir():
        path = _pick_in_dir(path)
    if not path.is_file():
        raise TokenizerError(
            f"tokenizer {str(path)!r} does not exist; give a tokenizer.json, vocab.txt, "
            "GPT-2 vocab + merges, a sentencepiece .model, or a directory holding one"
        )
    if path.suffix == ".model":
        return from_sentencepiece(path, xlnet=xlnet)
    if merges is None:
        renamed = path.name.replace("vocab", "merges")
        for sibling in (path.with_name(renamed), path.with_name(Path(renamed).stem + ".txt"),
                        path.with_name("merges.txt")):
            if sibling != path and sibling.is_file():
                merges = sibling
                break
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TokenizerError(f"{path}: not valid JSON ({err})") from None
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            return Tokenizer.from_json(json.dumps(data))
        if isinstance(data, dict) and merges is not None:
            return from_gpt2(path, merges)
        raise TokenizerError(f"{path}: neither a tokenizer.json nor a GPT-2 vocab.json with merges beside it")
    if merges is not None:
        return from_gpt2(path, merges)
    return from_bert_vocab(path, lowercase=lowercase)


def _pick_in_dir(folder: Path) -> Path:
    for name in ("tokenizer.json", "vocab.txt", "vocab.json"):
        if (folder / name).is_file():
            return folder / name
    models_ = sorted(folder.glob("*.model"))
    if len(models_) == 1:
        return models_[0]
    raise TokenizerError(
        f"no tokenizer in {str(folder)!r}: expected tokenizer.json, vocab.txt, vocab.json + merges.txt "
        "or one sentencepiece .model"
    )


def _read_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise TokenizerError(f"{path}: vocabulary is not UTF-8 ({err})") from None
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _index(tokens: list[str], path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise TokenizerError(f"{path}: token {tok!r} appears twice (lines {vocab[tok] + 1} and {i + 1})")
        vocab[tok] = i
    if not vocab:
        raise TokenizerError(f"{path}: the vocabulary is empty")
    return vocab


def _finish(backend: Backend, specials: list[AddedToken | str], kind: str, cls_last: bool = False) -> Tokenizer:
    normal = [t for t in specials if isinstance(t, AddedToken) and not t.special]
    special = [t for t in specials if not (isinstance(t, AddedToken) and not t.special)]
    if normal:
        backend.add_tokens(normal)
    if special:
        backend.add_special_tokens(special)
    tok = Tokenizer(backend, kind=kind)
    processor = template_processor(tok, cls_last)
    if processor is not None:
        backend.post_processor = processor
        tok = Tokenizer(backend, kind=kind)
    return tok


def from_bert_vocab(path: str | Path, lowercase: bool | None = None) -> Tokenizer:
    """A BERT ``vocab.txt`` (one WordPiece token per line, ``##`` continuations)."""
    path = Path(path)
    vocab = _index(_read_lines(path), path)
    if lowercase is None:  # an uncased vocabulary has (almost) no capital letters
        plain = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]
        capital = sum(any("A" <= c <= "Z" for c in t) for t in plain)
        lowercase = capital < 0.01 * max(1, len(plain))
    unk = next((t for t in ROLE_TOKENS["unk"] if t in vocab), None)
    if unk is None:
        raise TokenizerError(f"{path}: a WordPiece vocabulary needs an [UNK] token")
    backend = Backend(models.WordPiece(vocab=vocab, unk_token=unk, continuing_subword_prefix="##",
                                       max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    specials = [t for t in vocab if t in ROLE_NAMES]
    return _finish(backend, specials, "wordpiece")


def from_gpt2(vocab_path: str | Path, merges_path: str | Path) -> Tokenizer:
    """GPT-2 byte-level BPE: ``vocab.json`` (token -> id) or one token per line, plus
    ``merges.txt``."""
    vocab_path, merges_path = Path(vocab_path), Path(merges_path)
    if vocab_path.suffix == ".json":
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        if not all(isinstance(v, int) for v in vocab.values()):
            raise TokenizerError(f"{vocab_path}: a GPT-2 vocab.json maps tokens to integer ids")
    else:
        vocab = _index(_read_lines(vocab_path), vocab_path)
    if not merges_path.is_file():
        raise TokenizerError(f"merges file {str(merges_path)!r} does not exist")
    merges = []
    for n, line in enumerate(_read_lines(merges_path)):
        if line.startswith("#version") or not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or parts[0] + parts[1] not in vocab:
            raise TokenizerError(f"{merges_path}:{n + 1}: bad merge {line!r} (want two tokens whose "
                                 "concatenation is in the vocabulary)")
        merges.append((parts[0], parts[1]))
    backend = Backend(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    specials = [t for t in vocab if t in ROLE_NAMES]
    return _finish(backend, specials, "bpe")


def from_sentencepiece(path: str | Path, xlnet: bool = False) -> Tokenizer:
    """A SentencePiece ``.model`` (unigram or BPE), rebuilt as a ``tokenizers`` pipeline:
    precompiled normalisation, whitespace as ``▁``, the same pieces and scores.

    ``xlnet``: XLNet's reading of the model (its tokenizer's defaults): LaTeX quotes
    (two backticks, two apostrophes) become ``"``, accents are stripped (NFKD, then
    combining marks dropped) before the model's own normalisation, role pieces
    ([MASK], ...) are special tokens even when user-defined, and
    ``add_special_tokens`` writes ``a [SEP] (b [SEP]) [CLS]`` with token types 0/1/2."""
    path = Path(path)
    model = spm.read_spm(path.read_bytes())
    if model.model_type not in (spm.UNIGRAM, spm.BPE):
        raise TokenizerError(f"{path}: sentencepiece model type {model.model_type} (word/char) is not supported")
    pieces = model.pieces
    unk_id = next((i for i, p in enumerate(pieces) if p[2] == spm.UNKNOWN), None)
    if unk_id is None and not model.byte_fallback:
        raise TokenizerError(f"{path}: the sentencepiece model has no unknown piece (<unk>), so it cannot encode "
                             "unseen text; it is corrupt or not a trained model")
    try:
        if model.model_type == spm.UNIGRAM:
            core = models.Unigram([(p, s) for p, s, _ in pieces], unk_id=unk_id, byte_fallback=model.byte_fallback)
        else:
            vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
            core = models.BPE(vocab=vocab, merges=_bpe_merges(vocab), unk_token=pieces[unk_id][0]
                              if unk_id is not None else None, byte_fallback=model.byte_fallback, fuse_unk=True)
        backend = Backend(core)
    except Exception as err:  # tokenizers raises plain Exceptions on inconsistent models
        raise TokenizerError(f"{path}: not a usable sentencepiece model ({err})") from None
    norm = []
    if xlnet:
        norm += [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.NFKD(),
                 normalizers.StripAccents()]
    if model.precompiled_charsmap:
        norm.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        norm += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if norm:
        backend.normalizer = normalizers.Sequence(norm)
    scheme = "always" if model.add_dummy_prefix else "never"
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme,
                                                     split=model.split_by_whitespace)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme,
                                         split=model.split_by_whitespace)
    # Control pieces ([CLS], <s>...) become special tokens; user-defined pieces stay in the
    # model, where their zero score makes Viterbi pick them from text as sentencepiece does.
    # XLNet's tokenizer declares its role tokens special, user-defined pieces included.
    specials: list[AddedToken | str] = [AddedToken(p, special=True, normalized=False)
                                        for p, _, kind in pieces if kind in (spm.CONTROL, spm.UNKNOWN)
                                        or (xlnet and p in ROLE_NAMES)]
    return _finish(backend, specials, "bpe" if model.model_type == spm.BPE else "unigram", cls_last=xlnet)


def _bpe_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges of a sentencepiece BPE model, recovered from its pieces: every split of a
    piece into two pieces, ordered by the rank of the merged piece."""
    found = []
    for piece, rank in vocab.items():
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                found.append((rank, vocab[left], vocab[right], left, right))
    found.sort()
    return [(a, b) for *_, a, b in found]
