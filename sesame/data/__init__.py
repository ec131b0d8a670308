"""Corpus preparation and reading: raw text -> shards -> examples -> batches."""
from sesame.data.prepare import prepare
from sesame.data.read import Document, iter_texts
from sesame.data.sentences import sentence_spans, split_sentences
from sesame.data.shards import Corpus, Shard, open_corpus

__all__ = ["prepare", "Document", "iter_texts", "sentence_spans", "split_sentences", "Corpus", "Shard",
           "open_corpus"]
