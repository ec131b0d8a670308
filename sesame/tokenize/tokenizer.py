"""``Tokenizer``: one wrapper over a Hugging Face ``tokenizers`` backend that every layer
uses. Encodings carry ids, tokens, character offsets into the original text and word
starts; special-token ids are attributes; ``save`` writes ``tokenizer.json``.

A tokenizer may own a word ``segmenter`` (a Chinese word vocabulary needs jieba): it then
splits the text into words itself and the backend reads those words. The backend's JSON
cannot hold a segmenter, so ``to_json`` adds it under a top-level ``"sesame"`` key; such a
file loads in sesame only, where Hugging Face ``tokenizers`` would mis-split the text."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from itertools import chain
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tokenizers
from tokenizers import processors

from sesame.errors import TokenizerError
from sesame.tokenize import hashing
from sesame.tokenize.segment import Segmenter, Span, segmenter_from_spec, word_spans, word_starts_with_words

SESAME_KEY = "sesame"  # sesame's own part of a tokenizer.json (the word segmenter)

# Role -> token strings that play it, most specific first.
ROLE_TOKENS = {
    "pad": ("[PAD]", "<pad>", "<|pad|>", "<|padding|>"),
    "unk": ("[UNK]", "<unk>", "<|unk|>"),
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "mask": ("[MASK]", "<mask>", "<|mask|>"),
    "bos": ("<s>", "<|endoftext|>", "<|begin_of_text|>", "<bos>"),
    "eos": ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"),
}
ROLES = tuple(ROLE_TOKENS)


@dataclasses.dataclass
class Encoding:
    """One encoded text. ``offsets[i]`` is the (start, end) character span of token i in
    the original text; ``word_starts[i]`` is True where token i begins a word;
    ``word_ids[i]`` numbers the words (-1 for [CLS]/[SEP] added around the text);
    ``special[i]`` marks special tokens, added or written literally in the text."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    word_starts: list[bool]
    word_ids: list[int]
    special: list[bool]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class ArrayEncoding:
    """Many texts encoded into flat arrays (the corpus-preparation fast path):
    ``ids`` and ``word_starts`` are concatenated, ``lengths[k]`` tokens belong to text k,
    ``offsets`` (N, 2) are relative to each text (None unless asked for)."""

    ids: np.ndarray
    lengths: np.ndarray
    word_starts: np.ndarray
    offsets: np.ndarray | None
    boundaries: list[list[int]] | None = None


class Tokenizer:
    """A trained or loaded vocabulary. Build with ``train_tokenizer``/``load_tokenizer``
    or ``Tokenizer.load(path)``."""

    def __init__(self, backend: tokenizers.Tokenizer, kind: str | None = None, segmenter: Segmenter | None = None):
        # a saved tokenizer.json may carry fixed padding/truncation (e.g. to 128): sesame pads
        # per batch and never truncates silently, so both are switched off
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.segmenter = segmenter  # splits text into the words the backend reads (see the module note)
        vocab = backend.get_vocab(with_added_tokens=True)
        self._vocab = vocab
        self._id_to_token = {i: t for t, i in vocab.items()}
        added = backend.get_added_tokens_decoder()
        self.special_tokens = [tok.content for _, tok in sorted(added.items()) if tok.special]
        self.kind = kind or _infer_kind(backend, vocab, set(self.special_tokens))
        self.special_ids: dict[str, int] = {}
        for role, names in ROLE_TOKENS.items():
            for name in names:
                if name in vocab:
                    self.special_ids[role] = vocab[name]
                    break
        model_unk = _model_unk(backend)
        if model_unk is not None and model_unk in vocab:
            self.special_ids["unk"] = vocab[model_unk]
        self._special_id_set = frozenset(vocab[t] for t in self.special_tokens if t in vocab)
        self._hash: str | None = None

    # ---- attributes -------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    pad_id = property(lambda self: self.special_ids.get("pad"))
    unk_id = property(lambda self: self.special_ids.get("unk"))
    cls_id = property(lambda self: self.special_ids.get("cls"))
    sep_id = property(lambda self: self.special_ids.get("sep"))
    mask_id = property(lambda self: self.special_ids.get("mask"))
    bos_id = property(lambda self: self.special_ids.get("bos"))
    eos_id = property(lambda self: self.special_ids.get("eos"))

    @property
    def hash(self) -> str:
        """A stable content hash (16 hex digits) of the vocabulary and pipeline."""
        if self._hash is None:
            # floats rounded: a unigram score may change in its last bit when re-read
            data = json.loads(self.to_json(), parse_float=lambda x: float(f"{float(x):.10g}"))
            canon = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            self._hash = hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]
        return self._hash

    @property
    def lowercase(self) -> bool:
        norm = self.backend.normalizer
        return norm is not None and norm.normalize_str("A") == "a"

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def __repr__(self) -> str:
        roles = ", ".join(f"{r}={i}" for r, i in self.special_ids.items())
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, {roles})"

    # ---- tokens <-> ids ---------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def id_to_token(self, index: int) -> str | None:
        return self._id_to_token.get(int(index))

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        unk = self.unk_id
        out = []
        for tok in tokens:
            i = self._vocab.get(tok, unk)
            if i is None:
                raise TokenizerError(f"token {tok!r} is not in the vocabulary and it has no unknown token")
            out.append(i)
        return out

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            tok = self._id_to_token.get(int(i))
            if tok is None:
                raise TokenizerError(f"id {int(i)} is outside the vocabulary (size {self.vocab_size})")
            out.append(tok)
        return out

    def is_special(self, index: int) -> bool:
        return int(index) in self._special_id_set

    # ---- encoding ---------------------------------------------------------------
    def encode(self, text: str, *, add_special_tokens: bool = False, segmenter: Segmenter | None = None,
               words: Sequence[Span] | None = None) -> Encoding:
        """Encode one text. CJK word starts follow ``words`` (character spans) or the
        ``segmenter``; other word starts come from the pre-tokenizer."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        if self.kind == "trigram":
            enc = self._encode_trigrams(text)
        else:
            raw, offsets = self._backend_encode(text, add_special_tokens)
            # special: inserted by the post-processor, or a special token written literally in
            # the text (still a word of the text; an [UNK] for unknown text is not special)
            inserted = [m == 1 for m in raw.special_tokens_mask]
            special = [m or (i in self._special_id_set and text[o[0]:o[1]] == t)
                       for i, t, o, m in zip(raw.ids, raw.tokens, offsets, inserted)]
            prev = object()
            starts = []
            for w, m in zip(raw.word_ids, inserted):
                starts.append(not m and w != prev)
                if not m:
                    prev = w
            enc = Encoding(list(raw.ids), list(raw.tokens), offsets, starts, [], special)
        inserted = [sp and s == e for sp, (s, e) in zip(enc.special, enc.offsets)]
        gold = words is not None
        if words is None and segmenter is not None:
            words = segmenter.spans(text)
        if words is not None and len(enc):
            starts = word_starts_with_words(text, np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2),
                                            np.asarray(enc.word_starts), words, gold=gold)
            enc.word_starts = [bool(s) and not m for s, m in zip(starts, inserted)]
        enc.word_ids = _number_words(enc.word_starts, inserted)
        if add_special_tokens and self.kind == "trigram":
            enc = self._wrap(enc)
        return enc

    def _backend_encode(self, text: str, add_special_tokens: bool) -> tuple[tokenizers.Encoding, list[Span]]:
        """The backend's encoding of ``text`` and its offsets into ``text``; with a segmenter,
        the backend reads the segmenter's words (its offsets are then within each word)."""
        if self.segmenter is None:
            raw = self.backend.encode(text, add_special_tokens=add_special_tokens)
            return raw, [tuple(o) for o in raw.offsets]
        spans = word_spans(text, self.segmenter)
        raw = self.backend.encode([text[a:b] for a, b in spans], is_pretokenized=True,
                                  add_special_tokens=add_special_tokens)
        return raw, [o if w is None or m else (o[0] + spans[w][0], o[1] + spans[w][0])
                     for o, w, m in zip(raw.offsets, raw.word_ids, raw.special_tokens_mask)]

    def encode_batch(self, texts: Sequence[str], **kwargs) -> list[Encoding]:
        return [self.encode(t, **kwargs) for t in texts]

    def encode_arrays(self, texts: Sequence[str], offsets: bool | Sequence[bool] = False,
                      boundaries: Sequence[Sequence[int]] | None = None) -> ArrayEncoding:
        """Encode many texts (no special tokens added) into flat numpy arrays; the fast
        path of corpus preparation. ``offsets`` may be a per-text list of flags.

        ``boundaries`` (per text, increasing character positions, e.g. sentence starts)
        come back in ``.boundaries`` as token indices within each text: the first token
        that starts at or after the position."""
        texts = list(texts)
        raw = None
        if self.kind == "trigram" or self.segmenter is not None:
            encs = [self._encode_trigrams(t) if self.kind == "trigram" else self.encode(t) for t in texts]
            ids_l = [e.ids for e in encs]
            offs_l = [e.offsets for e in encs]
            starts_l = [e.word_starts for e in encs]
        else:
            raw = self.backend.encode_batch(texts, add_special_tokens=False)
            ids_l = [e.ids for e in raw]
            offs_l = starts_l = None
        lengths = np.fromiter((len(x) for x in ids_l), dtype=np.int64, count=len(ids_l))
        total = int(lengths.sum())
        ids = np.fromiter(chain.from_iterable(ids_l), dtype=np.uint32, count=total)
        if starts_l is not None:
            starts = np.fromiter(chain.from_iterable(starts_l), dtype=bool, count=total)
        else:
            wid = np.fromiter(chain.from_iterable(e.word_ids for e in raw), dtype=np.int64, count=total)
            starts = np.ones(total, dtype=bool)
            if total:
                starts[1:] = wid[1:] != wid[:-1]
                first = np.cumsum(lengths) - lengths
                starts[first[lengths > 0]] = True
        want = offsets if not isinstance(offsets, bool) else [offsets] * len(texts)
        offs = None
        if any(want):
            offs = np.full((total, 2), -1, dtype=np.int64)
            pos = 0
            for k, n in enumerate(lengths.tolist()):
                if want[k] and n:
                    offs[pos:pos + n] = offs_l[k] if offs_l is not None else raw[k].offsets
                pos += n
        out = ArrayEncoding(ids, lengths, starts, offs)
        if boundaries is not None:
            out.boundaries = [[0] if len(b) == 1 and b[0] == 0 else
                              self._boundary_tokens(raw[k] if raw is not None else offs_l[k], texts[k], b, n)
                              for k, (b, n) in enumerate(zip(boundaries, lengths.tolist()))]
        return out

    @staticmethod
    def _boundary_tokens(enc, text: str, chars: Sequence[int], n: int) -> list[int]:
        """Token index of each character boundary: the first token starting at or after it
        (a token that straddles the boundary stays with the text before it)."""
        if isinstance(enc, list):  # trigram offsets
            starts = np.array([o[0] for o in enc], dtype=np.int64)
            return np.searchsorted(starts, np.asarray(chars, dtype=np.int64), side="left").tolist()
        out = []
        for c in chars:
            if c == 0:
                out.append(0)
                continue
            t = None
            pos = c
            while t is None and pos < len(text):
                if not text[pos].isspace():
                    t = enc.char_to_token(pos)
                pos += 1
            if t is None:
                out.append(n)
            else:
                out.append(t + 1 if enc.token_to_chars(t)[0] < c else t)
        return out

    def _encode_trigrams(self, text: str) -> Encoding:
        raw = self.backend.encode(text, add_special_tokens=False)
        norm = self.backend.normalizer
        unk = self.unk_id
        ids, toks, offs, starts, special = [], [], [], [], []
        for tok, i, (s, e) in zip(raw.tokens, raw.ids, raw.offsets):
            if i in self._special_id_set and tok in self.special_tokens and text[s:e] == tok:
                ids.append(i), toks.append(tok), offs.append((s, e)), starts.append(True)
                special.append(True)
                continue
            word = text[s:e]
            if norm is not None:
                word = norm.normalize_str(word)
            word = "".join(word.split())
            if not word:
                continue
            grams = hashing.letter_trigrams(word)
            spans = hashing.trigram_spans(len(word)) if len(word) == e - s else [(0, e - s)] * len(grams)
            for k, (g, (a, b)) in enumerate(zip(grams, spans)):
                gid = self._vocab.get(g, unk)
                ids.append(gid)
                toks.append(g if gid != unk else self._id_to_token[unk])
                offs.append((s + a, s + b))
                starts.append(k == 0)
                special.append(False)
        return Encoding(ids, toks, offs, starts, [], special)

    def _wrap(self, enc: Encoding) -> Encoding:
        a, b = self._ends()
        ids = [a] + enc.ids + [b]
        return Encoding(ids, self.convert_ids_to_tokens(ids), [(0, 0)] + enc.offsets + [(0, 0)],
                        [False] + enc.word_starts + [False], [-1] + enc.word_ids + [-1],
                        [True] + enc.special + [True])

    def _ends(self) -> tuple[int, int]:
        if self.cls_id is not None and self.sep_id is not None:
            return self.cls_id, self.sep_id
        if self.bos_id is not None and self.eos_id is not None:
            return self.bos_id, self.eos_id
        raise TokenizerError(
            "this vocabulary has neither [CLS]/[SEP] nor <s>/</s> tokens; "
            "train it with special tokens or add them before building model inputs"
        )

    def build_inputs(self, ids_a: Sequence[int], ids_b: Sequence[int] | None = None, cls_last: bool = False
                     ) -> tuple[list[int], list[int]]:
        """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` (``<s>``/``</s>`` when there is
        no [CLS]/[SEP]) and the matching token type ids. ``cls_last``: XLNet's
        ``a [SEP] (b [SEP]) [CLS]``, the classification token in a segment (2) of its own."""
        start, end = self._ends()
        ids = [*ids_a, end] if cls_last else [start, *ids_a, end]
        types = [0] * len(ids)
        if ids_b is not None:
            ids += [*ids_b, end]
            types += [1] * (len(ids_b) + 1)
        if cls_last:
            ids.append(start)
            types.append(2)
        return ids, types

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if self.kind == "trigram":
            toks = [t for i, t in zip(ids, self.convert_ids_to_tokens(ids))
                    if not (skip_special_tokens and i in self._special_id_set)]
            return hashing.decode_trigrams(toks, self._id_to_token.get(self.unk_id))
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    # ---- files ------------------------------------------------------------------
    def to_json(self) -> str:
        text = self.backend.to_str()
        if self.segmenter is None:
            return text
        data = json.loads(text)
        data[SESAME_KEY] = {"segmenter": self.segmenter.spec()}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Tokenizer":
        segmenter = None
        if f'"{SESAME_KEY}"' in text:
            data = json.loads(text)
            own = data.pop(SESAME_KEY, None)
            if own is not None:
                if not isinstance(own, dict) or set(own) - {"segmenter"}:
                    raise TokenizerError(f"the tokenizer file's {SESAME_KEY!r} part holds {own!r}; sesame "
                                         "writes only {'segmenter': {...}} there")
                segmenter = segmenter_from_spec(own["segmenter"]) if own.get("segmenter") else None
                text = json.dumps(data, ensure_ascii=False)
        try:
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as err:  # the Rust side raises plain Exceptions
            raise TokenizerError(f"not a valid tokenizer.json: {err}") from None
        return cls(backend, segmenter=segmenter)

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (into ``path`` when it is a directory or has no
        ``.json`` suffix). Returns the file written."""
        path = Path(path)
        if path.suffix != ".json":
            path.mkdir(parents=True, exist_ok=True)
            path = path / "tokenizer.json"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        if self.segmenter is None:
            self.backend.save(str(path), pretty=True)
        else:
            path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> "Tokenizer":
        """A run directory, ``tokenizer.json``, BERT ``vocab.txt``, GPT-2 vocab + merges or a
        sentencepiece ``.model`` (see ``load_tokenizer``)."""
        from sesame.tokenize.load import load_tokenizer

        return load_tokenizer(path, **kwargs)

    from_file = load


def _number_words(starts: list[bool], inserted: list[bool]) -> list[int]:
    out, w = [], -1
    for s, sp in zip(starts, inserted):
        if sp:
            out.append(-1)
            continue
        if s or w < 0:
            w += 1
        out.append(w)
    return out


def _model_unk(backend: tokenizers.Tokenizer) -> str | None:
    model = backend.model
    unk = getattr(model, "unk_token", None)
    if isinstance(unk, str):
        return unk
    data = json.loads(backend.to_str()).get("model", {})
    if data.get("type") == "Unigram" and data.get("unk_id") is not None:
        return data["vocab"][data["unk_id"]][0]
    return None


def _infer_kind(backend: tokenizers.Tokenizer, vocab: dict[str, int], specials: set[str]) -> str:
    name = type(backend.model).__name__
    if name == "WordLevel":
        return "trigram" if hashing.is_trigram_vocab(vocab, specials) else "wordlevel"
    if name == "WordPiece":
        prefix = backend.model.continuing_subword_prefix
        plain = [t for t in vocab if t not in specials]
        if plain and all(len(t) == 1 or (t.startswith(prefix) and len(t) == len(prefix) + 1) for t in plain):
            return "char"
        return "wordpiece"
    return {"BPE": "bpe", "Unigram": "unigram"}.get(name, name.lower())


def template_processor(tok: Tokenizer, cls_last: bool = False) -> processors.TemplateProcessing | None:
    """``[CLS] $A [SEP]`` (or ``<s> $A </s>``) post-processing for ``add_special_tokens``;
    ``cls_last``: XLNet's ``$A [SEP] [CLS]`` (as ``build_inputs(..., cls_last=True)``)."""
    try:
        a, b = tok._ends()
    except TokenizerError:
        return None
    sa, sb = tok.id_to_token(a), tok.id_to_token(b)
    if cls_last:
        return processors.TemplateProcessing(
            single=f"$A:0 {sb}:0 {sa}:2", pair=f"$A:0 {sb}:0 $B:1 {sb}:1 {sa}:2", special_tokens=[(sa, a), (sb, b)]
        )
    return processors.TemplateProcessing(
        single=f"{sa} $A {sb}", pair=f"{sa} $A {sb} $B:1 {sb}:1", special_tokens=[(sa, a), (sb, b)]
    )
