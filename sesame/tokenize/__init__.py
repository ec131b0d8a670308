"""Tokenizers: train or load vocabularies, encode with character offsets and word
starts, segment Chinese, hash words into letter trigrams, find entity spans."""
from sesame.tokenize.entities import PhraseLexicon
from sesame.tokenize.hashing import letter_trigrams
from sesame.tokenize.load import load_tokenizer
from sesame.tokenize.segment import JiebaSegmenter, Segmenter, get_segmenter, parse_tagged
from sesame.tokenize.tokenizer import ArrayEncoding, Encoding, Tokenizer
from sesame.tokenize.train import build_tokenizer, train_tokenizer

__all__ = [
    "Tokenizer", "Encoding", "ArrayEncoding", "train_tokenizer", "load_tokenizer", "build_tokenizer", "Segmenter",
    "JiebaSegmenter", "get_segmenter", "parse_tagged", "PhraseLexicon", "letter_trigrams",
]
