"""The tokenizer section: which vocabulary to train (or load) and how text is normalised."""
from __future__ import annotations

import dataclasses

from sesame.config.base import Section, choice
from sesame.errors import ConfigError

KINDS = ("wordpiece", "bpe", "unigram", "char", "trigram")
UNICODE_FORMS = ("none", "nfc", "nfd", "nfkc", "nfkd")

# Special tokens per kind, in id order (pad first, so that pad_id = 0).
DEFAULT_SPECIALS = {
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "char": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "trigram": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "bpe": ["<pad>", "<s>", "</s>", "<unk>", "<mask>"],
    "unigram": ["<pad>", "<unk>", "<s>", "</s>", "<mask>"],
}


@dataclasses.dataclass
class TokenizerConfig(Section):
    """Train a vocabulary (``kind``, ``vocab_size``, ``files``) or load one (``path``).

    ``kind``: ``wordpiece`` (BERT), ``bpe`` (GPT-2 byte-level), ``unigram``
    (SentencePiece), ``char`` (every character a token, ``##`` marks word-inner
    characters) or ``trigram`` (DSSM letter-trigram word hashing, ``#go goo ood od#``).
    ``cjk_chars``: every CJK character is its own word, as BERT-Chinese does.
    ``limit_alphabet`` caps the characters kept (default: see ``alphabet_limit``).
    ``lowercase``/``unicode``/``strip_accents`` left unset take the kind's default
    (lowercase for wordpiece/char/trigram, NFKC for unigram, accents stripped when lowercasing).
    """

    SECTION = "tokenizer"
    kind: str = "wordpiece"
    vocab_size: int = 30522
    min_frequency: int = 2
    lowercase: bool | None = None
    strip_accents: bool | None = None
    unicode: str | None = None
    cjk_chars: bool = True
    special_tokens: list[str] | None = None
    limit_alphabet: int | None = None
    max_piece_length: int = 16
    files: list[str] = dataclasses.field(default_factory=list)
    path: str | None = None

    def validate(self) -> None:
        choice("tokenizer.kind", self.kind, KINDS)
        if self.unicode is not None:
            choice("tokenizer.unicode", self.unicode, UNICODE_FORMS)
        if self.vocab_size < len(self.specials) + 1:
            raise ConfigError(
                f"tokenizer.vocab_size = {self.vocab_size} leaves no room beside "
                f"{len(self.specials)} special tokens; raise it"
            )
        if self.min_frequency < 0 or (self.limit_alphabet or 1) <= 0 or self.max_piece_length <= 0:
            raise ConfigError(
                "tokenizer.min_frequency must be >= 0, limit_alphabet and max_piece_length positive"
            )
        if len(set(self.specials)) != len(self.specials):
            raise ConfigError(f"tokenizer.special_tokens has duplicates: {self.specials}")

    @property
    def specials(self) -> list[str]:
        return list(self.special_tokens) if self.special_tokens is not None else DEFAULT_SPECIALS[self.kind]

    @property
    def alphabet_limit(self) -> int:
        """Most distinct characters a WordPiece vocabulary keeps: 1000, or 80 % of the
        vocabulary when every CJK character is a word (Chinese needs thousands)."""
        if self.limit_alphabet is not None:
            return self.limit_alphabet
        return max(1000, self.vocab_size * 4 // 5) if self.cjk_chars else 1000

    @property
    def do_lowercase(self) -> bool:
        if self.lowercase is not None:
            return self.lowercase
        return self.kind in ("wordpiece", "char", "trigram")

    @property
    def unicode_form(self) -> str:
        if self.unicode is not None:
            return self.unicode
        return "nfkc" if self.kind == "unigram" else "none"
