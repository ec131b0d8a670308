"""Compression: knowledge distillation (``distill``: Hinton KD, DistilBERT, TinyBERT, MiniLM's
attention part), pruning (``prune``: gradual magnitude, heads by importance, layers),
LayerDrop and BERT-of-Theseus (``replace``), int8 quantization (``quantize``: dynamic,
static, QAT), the structural edits they share (``surgery``) and their losses (``losses``).
The CLI verbs are ``sesame distill``, ``sesame prune`` and ``sesame quantize``; see
docs/compression.md."""
