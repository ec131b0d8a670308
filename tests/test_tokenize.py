"""Tokenizers: training, special tokens, offsets and word starts, saving, hashing."""
from __future__ import annotations

import numpy as np
import pytest

from sesame.config import TokenizerConfig
from sesame.errors import ConfigError, TokenizerError
from sesame.tokenize import Tokenizer, letter_trigrams, load_tokenizer, train_tokenizer
from sesame.tokenize.hashing import decode_trigrams
from sesame.tokenize.train import expand_files

EN = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, doesn't she?",
    "Good things come to those who wait; good people wait for good things.",
    "Unbelievable! The players played a playful game in the playground.",
] * 30
ZH = ["今天天气很好，我们去公园玩吧。", "中华人民共和国成立了。", "我们都喜欢学习自然语言处理。"] * 30
CORPUS = EN + ZH + ["Mixed 中文 and English text, naïve café."] * 10


@pytest.fixture(scope="module")
def tokenizers_by_kind():
    sizes = {"wordpiece": 400, "bpe": 400, "unigram": 300, "char": 300, "trigram": 400}
    return {kind: train_tokenizer(texts=CORPUS, kind=kind, vocab_size=n, min_frequency=1)
            for kind, n in sizes.items()}


def test_train_each_kind_has_specials_and_size(tokenizers_by_kind):
    for kind, tok in tokenizers_by_kind.items():
        assert tok.kind == kind
        assert tok.vocab_size <= {"wordpiece": 400, "bpe": 400, "unigram": 300, "char": 300, "trigram": 400}[kind]
        assert tok.pad_id == 0, kind
        for role in ("unk", "mask"):
            assert tok.special_ids.get(role) is not None, (kind, role)
        assert tok.cls_id is not None and tok.sep_id is not None
        ids, types = tok.build_inputs([7, 8], [9])
        assert ids == [tok.cls_id, 7, 8, tok.sep_id, 9, tok.sep_id] and types == [0, 0, 0, 0, 1, 1]


def test_wordpiece_bert_style(tokenizers_by_kind):
    tok = tokenizers_by_kind["wordpiece"]
    enc = tok.encode("The players played.")
    assert enc.tokens[0] == "the"  # lowercased
    assert all(t.startswith("##") != s for t, s in zip(enc.tokens, enc.word_starts))  # ## <=> continuation
    assert tok.decode(enc.ids) == "the players played."
    with_special = tok.encode("good dog", add_special_tokens=True)
    assert with_special.tokens[0] == "[CLS]" and with_special.tokens[-1] == "[SEP]"
    assert with_special.special[0] and with_special.word_ids[0] == -1
    # BERT-Chinese: each CJK character is its own token, words from the segmenter come later
    zh = tok.encode("中华人民")
    assert zh.tokens == ["中", "华", "人", "民"] and zh.offsets == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_cjk_chars_off_keeps_chinese_runs_together():
    on = train_tokenizer(texts=ZH * 3, kind="wordpiece", vocab_size=300, min_frequency=1)
    off = train_tokenizer(texts=ZH * 3, kind="wordpiece", vocab_size=300, min_frequency=1, cjk_chars=False)
    assert len(on.encode("中华人民共和国").ids) == 7
    assert len(off.encode("中华人民共和国").ids) < 7


def test_bpe_is_byte_level_and_lossless(tokenizers_by_kind):
    tok = tokenizers_by_kind["bpe"]
    text = "Unknown glyphs ☃ and ünïcödé 𝔘 stay: 中文!"
    enc = tok.encode(text)
    assert tok.unk_id not in enc.ids  # byte-level: nothing is unknown
    assert tok.decode(enc.ids) == text


def test_unigram_and_char_round_trip(tokenizers_by_kind):
    assert tokenizers_by_kind["unigram"].decode(tokenizers_by_kind["unigram"].encode("the good dog").ids) \
        == "the good dog"
    char = tokenizers_by_kind["char"]
    enc = char.encode("good 中文")
    assert enc.tokens == ["g", "##o", "##o", "##d", "中", "文"]
    assert enc.word_starts == [True, False, False, False, True, True]
    assert char.decode(enc.ids) == "good 中 文"


def test_letter_trigrams():
    assert letter_trigrams("good") == ["#go", "goo", "ood", "od#"]
    assert letter_trigrams("a") == ["#a#"]
    assert decode_trigrams(letter_trigrams("good") + letter_trigrams("dog")) == "good dog"


def test_trigram_tokenizer_offsets_and_words(tokenizers_by_kind):
    tok = tokenizers_by_kind["trigram"]
    text = "Good dog"
    enc = tok.encode(text)
    assert enc.tokens[:4] == ["#go", "goo", "ood", "od#"]
    assert [text[s:e].lower() for s, e in enc.offsets[:4]] == ["go", "goo", "ood", "od"]
    assert enc.word_starts[:5] == [True, False, False, False, True]
    assert enc.word_ids[:5] == [0, 0, 0, 0, 1]
    assert tok.decode(enc.ids) == "good dog"
    # saved as a valid tokenizer.json and recognised again on load
    again = Tokenizer.from_json(tok.to_json())
    assert again.kind == "trigram" and again.encode(text).ids == enc.ids


def test_save_load_and_hash(tmp_path, tokenizers_by_kind):
    for kind, tok in tokenizers_by_kind.items():
        path = tok.save(tmp_path / kind)
        assert path.name == "tokenizer.json"
        back = Tokenizer.load(tmp_path / kind)
        assert back.hash == tok.hash and back.kind == kind
        text = "The good dog 中文."
        assert back.encode(text).ids == tok.encode(text).ids
    hashes = {tok.hash for tok in tokenizers_by_kind.values()}
    assert len(hashes) == len(tokenizers_by_kind)


def test_ids_tokens_conversion(tokenizers_by_kind):
    tok = tokenizers_by_kind["wordpiece"]
    ids = tok.encode("good dog").ids
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids)) == ids
    assert tok.token_to_id("[MASK]") == tok.mask_id and tok.id_to_token(tok.mask_id) == "[MASK]"
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        tok.convert_ids_to_tokens([10**6])


def test_encode_arrays_matches_encode(tokenizers_by_kind):
    texts = ["The good dog.", "", "中华人民 good", "Unbelievable things"]
    for tok in tokenizers_by_kind.values():
        arr = tok.encode_arrays(texts, offsets=True)
        pos = 0
        for text, n in zip(texts, arr.lengths.tolist()):
            enc = tok.encode(text)
            assert arr.ids[pos:pos + n].tolist() == enc.ids
            assert arr.word_starts[pos:pos + n].tolist() == enc.word_starts
            assert [tuple(o) for o in arr.offsets[pos:pos + n].tolist()] == enc.offsets
            pos += n


def test_word_starts_follow_segmenter_for_chinese(tokenizers_by_kind):
    tok = tokenizers_by_kind["wordpiece"]
    text = "我们喜欢 good dogs"
    enc = tok.encode(text, words=[(0, 2), (2, 4), (5, 9), (10, 14)])
    starts = [text[s:e] for (s, e), w in zip(enc.offsets, enc.word_starts) if w]
    assert starts[:2] == ["我", "喜"]
    assert enc.word_ids[:4] == [0, 0, 1, 1]


def test_config_errors():
    with pytest.raises(ConfigError, match="did you mean"):
        TokenizerConfig.from_dict({"knd": "bpe"})
    with pytest.raises(ConfigError, match="not one of"):
        TokenizerConfig.from_dict({"kind": "sentencepiece"})
    with pytest.raises(ConfigError, match="leaves no room"):
        TokenizerConfig.from_dict({"vocab_size": 3})
    with pytest.raises(TokenizerError, match="unknown token"):
        train_tokenizer(texts=EN, kind="wordpiece", vocab_size=100, special_tokens=["[PAD]"])
    with pytest.raises(TokenizerError, match="does not exist"):
        load_tokenizer("/nonexistent/tokenizer.json")
    with pytest.raises(TokenizerError, match="no training text"):
        train_tokenizer(kind="bpe")


def test_unigram_vocab_too_small_is_explained():
    with pytest.raises(TokenizerError, match="unigram"):
        train_tokenizer(texts=ZH, kind="unigram", vocab_size=10)


def test_train_from_files_and_globs(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(EN[:20]), encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(("\n".join(EN[20:40]) + "\nbad \xff byte\n").encode("latin-1"))
    assert expand_files(tmp_path) == expand_files(str(tmp_path / "**" / "*.txt")) == \
        [tmp_path / "a.txt", tmp_path / "sub" / "b.txt"]
    # byte-level BPE training is deterministic (WordPiece/Unigram training in `tokenizers`
    # breaks ties in hash order, so only the saved file pins their result)
    by_dir = train_tokenizer(tmp_path, kind="bpe", vocab_size=300, min_frequency=1)
    by_glob = train_tokenizer(str(tmp_path / "**" / "*.txt"), kind="bpe", vocab_size=300, min_frequency=1)
    assert by_dir.hash == by_glob.hash
    assert by_dir.decode(by_dir.encode("bad \ufffd byte").ids) == "bad \ufffd byte"
    with pytest.raises(TokenizerError, match="matches no files"):
        train_tokenizer(str(tmp_path / "*.md"), kind="bpe")


def test_word_ids_and_special_tokens(tokenizers_by_kind):
    tok = tokenizers_by_kind["wordpiece"]
    enc = tok.encode("good [MASK] dog")  # a special token written in the text is one of its words
    assert enc.special == [False, True, False]
    assert enc.word_starts == [True, True, True] and enc.word_ids == [0, 1, 2]
    enc = tok.encode("good dogs", add_special_tokens=True)  # added [CLS]/[SEP] are no words
    assert enc.word_ids[0] == enc.word_ids[-1] == -1 and not enc.word_starts[0]
    assert enc.word_ids[1:-1] == (np.cumsum(enc.word_starts[1:-1]) - 1).tolist()
    arr = tok.encode_arrays(["good [MASK] dog"])
    assert arr.word_starts.tolist() == [True, True, True]


def test_jieba_user_dictionary(tmp_path, tokenizers_by_kind):
    from sesame.tokenize import JiebaSegmenter

    text = "芝麻开门吧"
    plain = JiebaSegmenter().spans(text)
    (tmp_path / "user.txt").write_text("芝麻开门吧 1000 n\n", encoding="utf-8")
    seg = JiebaSegmenter(tmp_path / "user.txt")
    assert len(plain) > 1 and seg.spans(text) == [(0, 5)]
    assert JiebaSegmenter().spans(text) == plain  # the user words stay with their segmenter
    enc = tokenizers_by_kind["wordpiece"].encode(text, segmenter=seg)
    assert enc.word_starts == [True, False, False, False, False]
    with pytest.raises(TokenizerError, match="does not exist"):
        JiebaSegmenter(tmp_path / "missing.txt")


def test_encode_arrays_maps_sentence_starts_to_tokens(tokenizers_by_kind):
    text = "The good dog. Unbelievable things! 中华人民。我们"
    starts = [0, 13, 34, 39]  # each sentence with its leading space
    for kind, tok in tokenizers_by_kind.items():
        arr = tok.encode_arrays([text], boundaries=[starts])
        enc = tok.encode(text)
        want = []
        for c in starts:
            c2 = c + len(text[c:]) - len(text[c:].lstrip())
            want.append(next(i for i, (s, e) in enumerate(enc.offsets) if e > c2 and s >= c))
        assert list(arr.boundaries[0]) == want, kind
