"""Corpus preparation and reading: raw text -> shards -> examples -> batches."""
from sesame.data.batch import Batches, build_dataset, collate
from sesame.data.pairs import SentencePairs
from sesame.data.prepare import prepare
from sesame.data.read import Document, iter_texts
from sesame.data.sampler import Permutation, Sampler
from sesame.data.sentences import sentence_spans, split_sentences
from sesame.data.shards import Corpus, Shard, open_corpus
from sesame.data.windows import DocumentExamples, PackedWindows

__all__ = [
    "prepare", "Document", "iter_texts", "sentence_spans", "split_sentences", "Corpus", "Shard", "open_corpus",
    "PackedWindows", "DocumentExamples", "SentencePairs", "Sampler", "Permutation", "Batches", "collate",
    "build_dataset",
]
