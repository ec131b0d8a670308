"""First-generation embeddings: word2vec, GloVe and fastText trainers, their vector formats and evaluation."""
