"""Property test: every token's character offsets point at text that is that token.

For random English, Chinese and mixed text, and every tokenizer kind:
- the span is inside the text and not empty;
- the text at the span, normalised by the tokenizer (lowercase, accents, NFKC), equals
  the token's surface form: the token without its ``##`` / ``▁`` / ``Ġ`` marker
  (tokens with overlapping spans -- byte-level pieces of one character, a
  sentencepiece ``▁`` before a word -- are compared together; letter trigrams drop
  their ``#`` boundary marks);
- re-tokenising the span gives the token back: exactly for whole words and for the
  first piece of a WordPiece word (greedy longest match).
Documented exception: ``[UNK]`` stands for any text.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import decoders

from sesame.tokenize import train_tokenizer

EN_WORDS = ["the", "good", "dog", "players", "played", "playful", "unbelievable", "shells", "sea", "she",
            "doesn't", "wait", "things", "Quick", "BROWN", "fox", "naïve", "café", "x", "zq"]
ZH_CHARS = list("今天天气很好我们去公园玩吧中华人民共和国成立了都喜欢学习自然语言处理龘")
PUNCT = list(".,!?;:'\"()-，。！？")
SPACES = [" ", "  ", "\n", "\t"]
TRAIN = [
    "The quick brown fox jumps over the lazy dog. She sells sea shells; doesn't she?",
    "Good things come to those who wait, good players played a playful game.",
    "今天天气很好，我们去公园玩吧。中华人民共和国成立了。我们都喜欢学习自然语言处理。",
    "Mixed 中文 and English: naïve café, unbelievable!",
] * 20

english = st.lists(st.one_of(st.sampled_from(EN_WORDS), st.sampled_from(PUNCT)), min_size=1, max_size=12)
chinese = st.lists(st.one_of(st.sampled_from(ZH_CHARS), st.sampled_from(PUNCT[-4:])), min_size=1, max_size=16)
mixed = st.lists(st.one_of(st.sampled_from(EN_WORDS), st.sampled_from(ZH_CHARS), st.sampled_from(PUNCT),
                           st.sampled_from(["ＡＢＣ", "１２３", "ﬁ"])), min_size=1, max_size=14)


@st.composite
def texts(draw):
    parts = draw(st.one_of(english, chinese, mixed))
    seps = draw(st.lists(st.sampled_from(SPACES + [""]), min_size=len(parts), max_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, seps))


KINDS = {"wordpiece": 300, "bpe": 350, "unigram": 250, "char": 200, "trigram": 300}


@pytest.fixture(scope="module")
def tokenizers_by_kind():
    return {k: train_tokenizer(texts=TRAIN, kind=k, vocab_size=n, min_frequency=1) for k, n in KINDS.items()}


_BYTE_DECODER = decoders.ByteLevel()


def surface(tok, token: str) -> str:
    if tok.kind in ("wordpiece", "char"):
        return token[2:] if token.startswith("##") else token
    if tok.kind == "unigram":
        return token.replace("▁", " ")
    if tok.kind == "trigram":
        return token.strip("#")
    return token  # bpe: compared as bytes below


def normalise(tok, text: str) -> str:
    norm = tok.backend.normalizer
    return norm.normalize_str(text) if norm is not None else text


def clusters(offsets):
    """Consecutive tokens whose spans overlap (a byte-level split of one character)."""
    out: list[list[int]] = []
    end = -1
    for i, (s, e) in enumerate(offsets):
        if out and s < end:
            out[-1].append(i)
            end = max(end, e)
        else:
            out.append([i])
            end = e
    return out


def check_offsets(tok, text: str) -> None:
    enc = tok.encode(text)
    unk = tok.unk_id
    if tok.kind == "trigram":  # trigrams of a word overlap by design: token by token
        for tid, token, (s, e) in zip(enc.ids, enc.tokens, enc.offsets):
            assert 0 <= s < e <= len(text)
            if tid != unk:
                assert surface(tok, token) == "".join(normalise(tok, text[s:e]).split()), (token, text)
        return
    groups = clusters(enc.offsets)
    shared = {i for g in groups if len(g) > 1 for i in g}
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert 0 <= s < e <= len(text), (token, s, e, text)
    for g in groups:  # the tokens of a cluster (usually one token) spell the text at its span
        s, e = enc.offsets[g[0]][0], max(enc.offsets[i][1] for i in g)
        tokens = [enc.tokens[i] for i in g]
        if any(enc.ids[i] == unk for i in g):
            continue
        want = normalise(tok, text[s:e])
        if tok.kind == "bpe":
            assert _BYTE_DECODER.decode(tokens) == want, (tokens, text[s:e], text)
        else:
            got = "".join(surface(tok, t) for t in tokens)
            assert got.strip() == want.strip(), (tokens, text[s:e], text)
    # re-tokenising the span gives the token back
    n = len(enc.ids)
    for i, (token, (s, e)) in enumerate(zip(enc.tokens, enc.offsets)):
        if enc.ids[i] == unk or i in shared:
            continue
        whole = enc.word_starts[i] and (i + 1 == n or enc.word_starts[i + 1])
        first_piece = tok.kind in ("wordpiece", "char") and enc.word_starts[i]
        if not (whole or first_piece):
            continue
        again = tok.encode(text[s:e]).tokens
        if tok.kind == "unigram":
            assert "".join(again).lstrip("▁") == token.lstrip("▁"), (token, again)
        elif whole:
            assert again == [token], (token, again, text)
        else:
            assert again[0] == token, (token, again, text)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts())
def test_offsets_point_at_the_token(tokenizers_by_kind, kind, text):
    check_offsets(tokenizers_by_kind[kind], text)


def test_trigram_words_re_tokenise(tokenizers_by_kind):
    tok = tokenizers_by_kind["trigram"]
    text = "Good players played"
    enc = tok.encode(text)
    for w in set(enc.word_ids):
        idx = [i for i, x in enumerate(enc.word_ids) if x == w]
        s, e = enc.offsets[idx[0]][0], enc.offsets[idx[-1]][1]
        assert tok.encode(text[s:e]).ids == [enc.ids[i] for i in idx]
