"""Evaluation metrics of the downstream tasks, each as its reference defines it.

All scores are fractions (accuracy 0.913, BLEU 0.2731, MCC in [-1, 1]); reports
print them x100 as papers do.

* classification: accuracy, macro-F1 (over the classes seen in gold or predicted,
  as scikit-learn's default), Matthews correlation (the multi-class form; CoLA);
* tagging: entity-level precision/recall/F1 exactly as ``conlleval`` counts chunks;
* extractive QA: SQuAD exact match / F1 (the official normalisation) and the CMRC 2018
  variant (mixed segmentation, longest-common-substring F1);
* generation: corpus BLEU via ``sacrebleu`` and ROUGE via ``rouge-score`` (optional
  dependencies, imported when used)."""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Sequence

import numpy as np

from sesame.errors import ConfigError

# ---------------------------------------------------------------- classification


def accuracy(preds: Sequence, golds: Sequence) -> float:
    _same_length(preds, golds)
    return sum(p == g for p, g in zip(preds, golds)) / len(golds) if len(golds) else 0.0


def confusion_matrix(preds: Sequence[int], golds: Sequence[int], num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) counts; rows are gold labels, columns predictions."""
    _same_length(preds, golds)
    out = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(out, (np.asarray(golds, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return out


def per_class(preds: Sequence, golds: Sequence) -> dict:
    """{class: {precision, recall, f1, support}} for every class in gold or predicted."""
    _same_length(preds, golds)
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    for p, g in zip(preds, golds):
        if p == g:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    out = {}
    for c in sorted(set(preds) | set(golds), key=str):
        out[c] = {"precision": _ratio(tp[c], tp[c] + fp[c]), "recall": _ratio(tp[c], tp[c] + fn[c]),
                  "f1": _ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]), "support": tp[c] + fn[c]}
    return out


def macro_f1(preds: Sequence, golds: Sequence) -> float:
    """Unweighted mean of per-class F1 over the classes present in gold or predicted."""
    scores = per_class(preds, golds)
    return sum(s["f1"] for s in scores.values()) / len(scores) if scores else 0.0


def matthews_corrcoef(preds: Sequence, golds: Sequence) -> float:
    """Matthews correlation, multi-class form: (c*s - sum p_k t_k) /
    sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)); 0 when a factor of the denominator is 0."""
    _same_length(preds, golds)
    s = len(golds)
    c = sum(p == g for p, g in zip(preds, golds))
    pc, tc = collections.Counter(preds), collections.Counter(golds)
    classes = set(pc) | set(tc)
    cov = c * s - sum(pc[k] * tc[k] for k in classes)
    den = (s * s - sum(v * v for v in pc.values())) * (s * s - sum(v * v for v in tc.values()))
    return cov / den ** 0.5 if den > 0 else 0.0


# ---------------------------------------------------------------- tagging (conlleval)


def split_tag(tag: str) -> tuple[str, str]:
    """'B-creative-work' -> ('B', 'creative-work'); 'O' -> ('O', ''). Split at the first hyphen."""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _chunk_end(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's endOfChunk: does the chunk holding the previous token end before this one?"""
    if (prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"),
                       ("E", "E"), ("E", "I"), ("E", "O")}:
        return True
    if prev not in ("O", ".") and prev_type != kind:
        return True
    return prev in ("[", "]")


def _chunk_start(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's startOfChunk: an I- tag after O or after another type opens a chunk."""
    if (prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"),
                       ("E", "E"), ("E", "I"), ("O", "E")}:
        return True
    if tag not in ("O", ".") and prev_type != kind:
        return True
    return tag in ("[", "]")


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Chunks (type, start, end exclusive) of one sentence, found with conlleval's rules
    (works for IOB1, BIO and IOE tags; the sentence boundary acts as an ``O``)."""
    out, start = [], None
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):
        cur, kind = split_tag(tag)
        if start is not None and _chunk_end(prev, cur, prev_type, kind):
            out.append((prev_type, start, i))
            start = None
        if _chunk_start(prev, cur, prev_type, kind):
            if start is not None:  # defensive: never leave a chunk open across a new start
                out.append((prev_type, start, i))
            start = i
        prev, prev_type = cur, kind
    return out


def conlleval(golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict:
    """Entity-level scores over sentences of tags, as ``conlleval`` computes them: a
    predicted chunk is correct when its type, start and end all match a gold chunk.
    Returns precision/recall/f1/accuracy (token tags equal), counts, and ``per_type``."""
    _same_length(preds, golds)
    found_gold, found_pred, correct = collections.Counter(), collections.Counter(), collections.Counter()
    tokens = right = 0
    for n, (g, p) in enumerate(zip(golds, preds)):
        if len(g) != len(p):
            raise ConfigError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted tags")
        tokens += len(g)
        right += sum(a == b for a, b in zip(g, p))
        gc, pc = chunks(g), chunks(p)
        found_gold.update(t for t, _, _ in gc)
        found_pred.update(t for t, _, _ in pc)
        correct.update(t for t, _, _ in set(gc) & set(pc))

    def scores(c: int, fp: int, fg: int) -> dict:
        prec, rec = _ratio(c, fp), _ratio(c, fg)
        return {"precision": prec, "recall": rec, "f1": _ratio(2 * prec * rec, prec + rec),
                "correct": c, "found_pred": fp, "found_gold": fg}

    out = scores(sum(correct.values()), sum(found_pred.values()), sum(found_gold.values()))
    out["accuracy"] = _ratio(right, tokens)
    out["tokens"] = tokens
    out["per_type"] = {t: scores(correct[t], found_pred[t], found_gold[t])
                       for t in sorted(set(found_gold) | set(found_pred))}
    return out


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 (CoNLL-2003: B- only between two adjacent chunks of one type) to BIO:
    an I-X that starts a chunk (after O, at the start, or after another type) becomes B-X."""
    out, prev_type = [], ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and kind != prev_type:
            tag = f"B-{kind}"
        out.append(tag)
        prev_type = kind if prefix in ("B", "I") else ""
    return out


# ---------------------------------------------------------------- SQuAD

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def squad_normalize(text: str) -> str:
    """Lower case, strip ASCII punctuation, drop articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(prediction: str, answers: Sequence[str]) -> float:
    return float(max(squad_normalize(prediction) == squad_normalize(a) for a in _answers(answers)))


def squad_f1(prediction: str, answers: Sequence[str]) -> float:
    """Bag-of-tokens F1 with the best gold answer; an empty side scores 1 only against
    another empty side (SQuAD 2.0 handling of unanswerable questions)."""
    pred = squad_normalize(prediction).split()
    best = 0.0
    for answer in _answers(answers):
        gold = squad_normalize(answer).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
        if same:
            p, r = same / len(pred), same / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


# ---------------------------------------------------------------- CMRC 2018

# The official script's separator/punctuation list ('……' is two characters there and
# so never matches one character; kept as it is).
CMRC_PUNCT = frozenset(['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=', '，', '。', '：', '？', '！',
                        '“', '”', '；', '’', '《', '》', '……', '·', '、', '「', '」', '（', '）', '－', '～',
                        '『', '』'])
_CJK = re.compile(r"[\u4e00-\u9fa5]")
# Penn Treebank word splitting (what nltk's word_tokenize applies within a sentence),
# as ordered (pattern, replacement) rewrites; the result is split on whitespace.
_TREEBANK = [(re.compile(p), r) for p, r in [
    (r"([«“‘„]|`+)", r" \1 "), (r'^"', " `` "), (r"([ (\[{<])(\"|'')", r"\1 `` "),  # opening quotes
    (r"(?i)(^|\s)'(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", r"\1' "), (r"[–—]", r" \g<0> "),
    (r"([:,])([^\d])", r" \1 \2"), (r"([:,])$", r" \1 "), (r"\.\.\.", " ... "),
    (r"[;@#$%&?!*]", r" \g<0> "), (r"([^.])(\.)([\]\)}>\"']*)\s*$", r"\1 \2\3 "),  # final period
    (r"([^'])' ", r"\1 ' "), (r"[\]\[(){}<>]", r" \g<0> "), (r"--", " -- "),
    (r"([»”’])", r" \1 "), (r"''", " '' "), (r'"', " '' "),  # closing quotes
    (r"([^' ])('[sSmMdD]|') ", r"\1 \2 "), (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    *[(rf"(?i)\b({a})({b})\b", r" \1 \2 ") for a, b in
      (("can", "not"), ("gon", "na"), ("got", "ta"), ("wan", "na"), ("gim", "me"), ("lem", "me"))],
]]


def treebank_words(text: str) -> list[str]:
    """English words split the Penn Treebank way (``don't`` -> ``do n't``, punctuation
    apart, ``1,000`` and ``3.5`` whole) -- the official CMRC script's nltk tokenizer."""
    text = f"{text} "
    for pattern, repl in _TREEBANK:
        text = pattern.sub(repl, text)
    return text.split()


def cmrc_segment(text: str, remove_punct: bool = False) -> list[str]:
    """Mixed segmentation: each Chinese character (and separator) alone, runs of other
    characters split into words (the official script uses nltk's ``word_tokenize``)."""
    text = str(text).lower().strip()
    out: list[str] = []
    run = ""
    for ch in text:
        if remove_punct and ch in CMRC_PUNCT:
            continue
        if _CJK.match(ch) or ch in CMRC_PUNCT:
            if run:
                out += treebank_words(run)
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out += treebank_words(run)
    return out


def cmrc_remove_punct(text: str) -> str:
    return "".join(ch for ch in str(text).lower().strip() if ch not in CMRC_PUNCT)


def longest_common_substring(a: Sequence, b: Sequence) -> int:
    """Length of the longest common contiguous run of ``a`` and ``b``."""
    best, row = 0, [0] * (len(b) + 1)
    for x in a:
        new = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                new[j + 1] = row[j] + 1
                best = max(best, new[j + 1])
        row = new
    return best


def cmrc_exact(prediction: str, answers: Sequence[str]) -> float:
    pred = cmrc_remove_punct(prediction)
    return float(any(cmrc_remove_punct(a) == pred for a in _answers(answers)))


def cmrc_f1(prediction: str, answers: Sequence[str]) -> float:
    """F1 of the longest common substring of the segmented answer and prediction."""
    pred = cmrc_segment(prediction, remove_punct=True)
    best = 0.0
    for answer in _answers(answers):
        gold = cmrc_segment(answer, remove_punct=True)
        common = longest_common_substring(gold, pred)
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


def qa_scores(predictions: dict[str, str], answers: dict[str, Sequence[str]], style: str = "squad") -> dict:
    """Mean exact match and F1 over every question in ``answers`` (a question without a
    prediction scores 0, as the official scripts do)."""
    if style not in ("squad", "cmrc2018"):
        raise ConfigError(f"QA metric {style!r} is not one of 'squad', 'cmrc2018'")
    em_fn, f1_fn = (squad_exact, squad_f1) if style == "squad" else (cmrc_exact, cmrc_f1)
    em = f1 = 0.0
    missing = 0
    for qid, golds in answers.items():
        if qid not in predictions:
            missing += 1
            continue
        em += em_fn(predictions[qid], golds)
        f1 += f1_fn(predictions[qid], golds)
    n = len(answers)
    return {"exact_match": _ratio(em, n), "f1": _ratio(f1, n), "questions": n, "missing": missing}


# ---------------------------------------------------------------- generation


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], tokenize: str = "13a") -> dict:
    """Corpus BLEU by ``sacrebleu`` (``tokenize='zh'`` for Chinese targets). Each
    reference is a string or a list of alternatives. ``bleu`` is a fraction."""
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("BLEU needs the optional package sacrebleu: pip install sacrebleu") from None
    _same_length(hypotheses, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max((len(r) for r in refs), default=1)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    score = metric.corpus_score(list(hypotheses), streams)
    return {"bleu": score.score / 100, "precisions": [p / 100 for p in score.precisions],
            "brevity_penalty": score.bp, "hyp_len": score.sys_len, "ref_len": score.ref_len,
            "signature": str(metric.get_signature())}


def chrf(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict:
    """Corpus chrF (character 6-grams, beta 2) by ``sacrebleu``, as a fraction, with its signature."""
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("chrF needs the optional package sacrebleu: pip install sacrebleu") from None
    _same_length(hypotheses, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max((len(r) for r in refs), default=1)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    metric = sacrebleu.metrics.CHRF()
    return {"chrf": metric.corpus_score(list(hypotheses), streams).score / 100,
            "signature": str(metric.get_signature())}


class _CharTokens:
    """rouge-score tokenizer for Chinese: one token per non-space character."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return [ch for ch in text.lower() if not ch.isspace()]


def rouge(hypotheses: Sequence[str], references: Sequence[str], language: str = "en",
          types: Iterable[str] = ("rouge1", "rouge2", "rougeL")) -> dict:
    """Mean ROUGE F-measures by ``rouge-score`` (Porter stemming for English; Chinese is
    scored over characters)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ConfigError("ROUGE needs the optional package rouge-score: pip install rouge-score") from None
    _same_length(hypotheses, references)
    types = list(types)
    if language == "zh":
        scorer = rouge_scorer.RougeScorer(types, tokenizer=_CharTokens())
    else:
        scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    for hyp, ref in zip(hypotheses, references):
        for name, score in scorer.score(ref, hyp).items():
            totals[name] += score.fmeasure
    n = len(hypotheses)
    return {name: _ratio(total, n) for name, total in totals.items()}


# ---------------------------------------------------------------- helpers


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _answers(answers: Sequence[str]) -> list[str]:
    return list(answers) or [""]


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ConfigError(f"{len(a)} predictions but {len(b)} references")
