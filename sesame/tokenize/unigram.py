"""A reproducible Unigram trainer. ``tokenizers``' UnigramTrainer breaks ties in hash order, so
two runs on the same text give different vocabularies. This hands the word counts (after
sesame's own normalizer and pre-tokenizer, so pieces never cross the word and CJK boundaries
the tokenizer encodes with) to SentencePiece's unigram trainer, the reference implementation
(EM over the segmentation lattice, pruning by the likelihood lost), on one thread: its sums then
run in a fixed order and the same words and settings give the same pieces and scores, byte for
byte. The result is an ordinary ``tokenizers`` Unigram model; nothing is downloaded."""
from __future__ import annotations

import io
import tempfile
from collections import Counter
from pathlib import Path

from sesame.errors import TokenizerError
from sesame.tokenize import spm

# tab, newline and CR would break the TSV of word counts: they travel as Unicode noncharacters
ESCAPE = {9: "\ufdd0", 10: "\ufdd1", 13: "\ufdd2"}
UNESCAPE = {ord(v): chr(k) for k, v in ESCAPE.items()}


def learn_pieces(words: Counter, vocab_size: int, specials: list[str], max_piece_length: int = 16
                 ) -> list[tuple[str, float]]:
    """(piece, log-probability) for ``specials`` (score 0) then the learned pieces, best first;
    at most ``vocab_size`` in all (fewer when the text cannot fill it)."""
    try:
        import sentencepiece
    except ImportError:
        raise TokenizerError("training a unigram vocabulary needs the sentencepiece package: "
                             "pip install sentencepiece") from None
    counts: Counter = Counter()
    for word, n in words.items():
        counts[word.translate(ESCAPE)] += n
    if not any(counts):
        raise TokenizerError("the training text produced no vocabulary; check the input files")
    learned = vocab_size - len(specials)
    if learned < 1:
        raise TokenizerError(f"tokenizer.vocab_size {vocab_size} leaves no room beside the {len(specials)} "
                             "special tokens; raise it")
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="sesame-unigram-") as tmp:
        path = Path(tmp) / "words.tsv"
        with open(path, "w", encoding="utf-8") as f:
            for word, n in sorted(counts.items()):
                f.write(f"{word}\t{n}\n")
        try:
            sentencepiece.SentencePieceTrainer.train(
                input=str(path), input_format="tsv", model_writer=buf, model_type="unigram",
                vocab_size=learned + 1,  # + its own <unk>, dropped below for ours
                character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
                remove_extra_whitespaces=False, split_digits=False, hard_vocab_limit=False,
                split_by_unicode_script=False,  # as tokenizers' trainer: a piece may join letters and punctuation
                max_sentencepiece_length=max_piece_length, max_sentence_length=1 << 20,
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, minloglevel=2)
        except RuntimeError as err:
            hint = f"; raise tokenizer.vocab_size (now {vocab_size})" if "required_chars" in str(err) else ""
            raise TokenizerError(f"training the unigram vocabulary failed: {err}{hint}") from None
    taken = set(specials)
    pieces = [(tok, 0.0) for tok in specials]
    for piece, score, kind in spm.read_spm(buf.getvalue()).pieces:
        piece = piece.translate(UNESCAPE)
        if kind == spm.NORMAL and piece not in taken:
            taken.add(piece)
            pieces.append((piece, score))
    return pieces[:vocab_size]
