"""One masking core for the MLM family; the units differ only in how tokens are grouped.

A *group* is what is chosen and corrupted as one: a token (``token``), a word
(``word``, BERT-wwm: the corpus' recorded word starts), an n-gram of words
(``ngram``), an entity or phrase span (``entity``, ERNIE: the corpus' recorded
spans, words elsewhere), or a span of words (``span``, SpanBERT). The
80/10/10 decision (``replace_mask`` / ``replace_random`` / keep) is drawn once per
group and applied to all its tokens. Labels are the original tokens of every
selected group.

Selection: ``token``, ``word`` and ``entity`` choose each group independently with
probability ``mask_prob`` (so the expected share of masked tokens is ``mask_prob``).
``ngram`` and ``span`` fill a budget of ``round(mask_prob * words)`` words per
sequence with runs of consecutive words whose lengths come from a distribution
(``ngram``: ``ngram_probs`` over n = 1, 2, ...; ``span``: geometric(``span_p``)
clipped at ``max_span``); each run's start is uniform among the places it fits
without overlapping an earlier one, so accepted lengths follow the distribution
exactly (the last run is cut to the budget). Only non-special, non-padding tokens
are eligible; a word split by a window edge starts where the window does.
Groups are contiguous runs of eligible tokens."""
from __future__ import annotations

import numpy as np

from sesame.errors import ConfigError

UNITS = ("token", "word", "ngram", "entity", "span")


def check_corpus(opts, corpus) -> None:
    """Refuse masking by entities on a corpus that recorded none (it would silently be
    word masking)."""
    if getattr(opts, "unit", "token") == "entity" and opts.stages.get("entity", 0) > 0 \
            and not corpus.meta.get("num_entities"):
        raise ConfigError(
            f"objective.options.unit = 'entity' masks the corpus' entity spans, but {corpus.path} recorded none; "
            "prepare it with data.entities (a phrase lexicon) or from tagged/CoNLL inputs, or set "
            "objective.options.stages.entity = 0"
        )


def special_table(vocab, ids: np.ndarray) -> np.ndarray:
    special = np.zeros(max(vocab.size, int(ids.max(initial=0)) + 1), dtype=bool)
    special[list(vocab.special_ids)] = True
    if vocab.pad_id is not None:
        special[vocab.pad_id] = True
    return special


def clipped_geometric(p: float, max_len: int) -> np.ndarray:
    """P(L = 1..max_len) of a geometric(p) length clipped (renormalised) at ``max_len``."""
    lens = np.arange(1, max_len + 1)
    pmf = p * (1 - p) ** (lens - 1)
    return pmf / pmf.sum()


def word_ids(eligible: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(T,) word number of each eligible token (-1 elsewhere) for one sequence. Words begin
    at the recorded starts and at the first eligible token (a word cut by the window's
    edge); a non-eligible token inside a word ([UNK]) does not split it."""
    idx = np.flatnonzero(eligible)
    begin = starts[idx].astype(bool)
    if len(idx):
        begin[0] = True
    out = np.full(len(eligible), -1, dtype=np.int64)
    out[idx] = np.cumsum(begin) - 1
    return out


def entity_groups(eligible: np.ndarray, words: np.ndarray, entity: np.ndarray) -> np.ndarray:
    """Groups for ERNIE's entity stage: each entity span is one group, every word outside
    an entity is one group (-1 at non-eligible tokens, which never split a group)."""
    idx = np.flatnonzero(eligible)
    key = np.where(entity[idx] > 0, -entity[idx], words[idx])  # entities negative, words their number
    change = np.ones(len(idx), dtype=bool)
    change[1:] = key[1:] != key[:-1]
    out = np.full(len(eligible), -1, dtype=np.int64)
    out[idx] = np.cumsum(change) - 1
    return out


def budget_runs(n_words: int, budget: int, pmf: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Non-overlapping runs (start word, length) covering exactly ``budget`` of ``n_words``
    words; lengths drawn from ``pmf`` over 1..len(pmf), starts uniform where a run fits."""
    free = np.ones(n_words, dtype=bool)
    runs, left = [], budget
    tries = 0
    while left > 0 and tries < 100 * max(budget, 1):
        tries += 1
        length = int(rng.choice(len(pmf), p=pmf)) + 1
        if length > left:
            length = left  # the last run is cut to the budget
        # starts s where words s..s+length-1 are all free
        run = np.convolve(free.astype(np.int64), np.ones(length, dtype=np.int64), mode="valid")
        fits = np.flatnonzero(run == length)
        if not len(fits):
            continue
        s = int(fits[rng.integers(len(fits))])
        free[s:s + length] = False
        runs.append((s, length))
        left -= length
    return runs


def choose_groups(groups: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Select each group (ids 0..G-1, -1 = none) independently with ``prob``; (G,) bool."""
    n = int(groups.max(initial=-1)) + 1
    return rng.random(n) < prob


def corrupt(ids: np.ndarray, groups: np.ndarray, chosen: np.ndarray, rng: np.random.Generator, opts,
            vocab, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the per-group 80/10/10 decision to the tokens of chosen groups (one sequence)."""
    n = len(chosen)
    action = rng.random(n)
    g = np.where(groups >= 0, groups, 0)
    sel = (groups >= 0) & chosen[g] if n else np.zeros(len(ids), dtype=bool)
    act = action[g] if n else np.zeros(len(ids))
    labels = np.where(sel, ids, -100)
    to_mask = sel & (act < opts.replace_mask)
    to_random = sel & (act >= opts.replace_mask) & (act < opts.replace_mask + opts.replace_random)
    out = ids.copy()
    out[to_mask] = vocab.mask_id
    out[to_random] = normal[rng.integers(0, len(normal), int(to_random.sum()))]
    return out, labels


def stage_for(rng: np.random.Generator, stages: dict[str, float]) -> str:
    names = list(stages)
    p = np.array([stages[k] for k in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def mask_batch(batch: dict, rng: np.random.Generator, opts, vocab) -> dict[str, np.ndarray]:
    """Corrupt ``batch['input_ids']`` (B, T) by ``opts.unit``. Returns input_ids, labels and,
    for runs (``ngram``/``span``), ``span_left``/``span_right`` (boundary token index of the
    run each masked token is in, -1 elsewhere) and ``span_offset`` (position inside the run)."""
    if vocab.mask_id is None:
        raise ConfigError("masked language modelling needs a tokenizer with a [MASK] token")
    ids = np.asarray(batch["input_ids"])
    special = special_table(vocab, ids)
    normal = np.flatnonzero(~special[: vocab.size])
    unit = opts.unit
    if unit == "token":  # the fast, vectorised path (each token is its own group)
        eligible = ~special[ids]
        chosen = eligible & (rng.random(ids.shape) < opts.mask_prob)
        labels = np.where(chosen, ids, -100)
        action = rng.random(ids.shape)
        to_mask = chosen & (action < opts.replace_mask)
        to_random = chosen & (action >= opts.replace_mask) & (action < opts.replace_mask + opts.replace_random)
        out = ids.copy()
        out[to_mask] = vocab.mask_id
        out[to_random] = normal[rng.integers(0, len(normal), int(to_random.sum()))]
        return {"input_ids": out, "labels": labels}
    starts = batch.get("word_starts")
    if starts is None:
        raise ConfigError(f"objective.options.unit = {unit!r} needs the word starts recorded in the corpus; "
                          "train from a prepared corpus (data.inputs or data.corpus)")
    starts = np.asarray(starts).astype(bool)
    entities = batch.get("entity_ids")
    out, labels = ids.copy(), np.full_like(ids, -100)
    runs = unit in ("ngram", "span")
    if runs:
        left = np.full_like(ids, -1)
        right = np.full_like(ids, -1)
        offset = np.zeros_like(ids)
    pmf = clipped_geometric(opts.span_p, opts.max_span) if unit == "span" else np.asarray(opts.ngram_probs)
    for r in range(ids.shape[0]):
        eligible = ~special[ids[r]]
        words = word_ids(eligible, starts[r])
        kind = unit
        if unit == "entity":
            kind = stage_for(rng, opts.stages)
        if kind == "token":
            groups = np.where(eligible, np.cumsum(eligible) - 1, -1)
            chosen = choose_groups(groups, opts.mask_prob, rng)
        elif kind == "word":
            groups = words
            chosen = choose_groups(groups, opts.mask_prob, rng)
        elif kind == "entity":
            if entities is None:
                raise ConfigError("objective.options.unit = 'entity' needs entity spans in the corpus "
                                  "(tagged/CoNLL inputs or data.entities)")
            groups = entity_groups(eligible, words, np.asarray(entities[r]))
            chosen = choose_groups(groups, opts.mask_prob, rng)
        else:  # runs of words by budget
            n_words = int(words.max(initial=-1)) + 1
            budget = int(round(opts.mask_prob * n_words))
            spans = budget_runs(n_words, budget, pmf, rng)
            word_run = np.full(n_words, -1)
            for k, (s, length) in enumerate(spans):
                word_run[s:s + length] = k
            groups = np.where(words >= 0, word_run[np.maximum(words, 0)], -1)
            chosen = np.ones(len(spans), dtype=bool)
        out[r], labels[r] = corrupt(ids[r], groups, chosen, rng, opts, vocab, normal)
        if runs and len(spans):
            t = np.arange(ids.shape[1])
            inside = groups >= 0
            first = np.full(len(spans), ids.shape[1])
            last = np.full(len(spans), -1)
            np.minimum.at(first, groups[inside], t[inside])
            np.maximum.at(last, groups[inside], t[inside])
            g = groups[inside]
            left[r, inside] = first[g] - 1
            right[r, inside] = np.minimum(last[g] + 1, ids.shape[1] - 1)
            offset[r, inside] = t[inside] - first[g]
    result = {"input_ids": out, "labels": labels}
    if runs:
        result.update(span_left=left, span_right=right, span_offset=offset)
    return result
