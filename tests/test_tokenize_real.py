"""Real vocabularies and corpora from ../shared/data: loading existing vocabularies
(checked against the reference implementations) and training on real text."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from sesame.tokenize import get_segmenter, load_tokenizer, train_tokenizer
from sesame.tokenize.chars import is_cjk

SAMPLES = [
    "Hello World, this is a test of 2008 things!",
    "The U.S. isn't  here; naïve café costs $3.50.",
    "中华人民共和国成立了。今天天气很好，我们去公园玩吧！",
    "Mixed 中文 and English: ＡＢＣ１２３ [MASK] end",
]


def _head(path, size=200_000) -> str:
    return path.read_bytes()[:size].decode("utf-8", errors="ignore")


@pytest.mark.parametrize("name,lower", [("google_uncased_en_vocab.txt", True), ("google_cased_en_vocab.txt", False),
                                        ("google_zh_vocab.txt", True)])
def test_bert_vocab_matches_reference(shared_data, tmp_path, name, lower):
    from transformers import BertTokenizerFast

    path = shared_data / "vocab" / name
    tok = load_tokenizer(path)
    (tmp_path / "vocab.txt").write_bytes(path.read_bytes())
    ref = BertTokenizerFast.from_pretrained(str(tmp_path), do_lower_case=lower)
    assert tok.kind == "wordpiece" and tok.lowercase == lower and tok.vocab_size == len(ref)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    lines = _head(shared_data / "corpora" / "en" / "wikitext-2" / "valid.txt", 20_000).split("\n")[:40]
    for text in SAMPLES + lines:
        enc = tok.encode(text, add_special_tokens=True)
        assert enc.ids == ref(text)["input_ids"], text
        assert tok.decode(enc.ids) == ref.decode(enc.ids, skip_special_tokens=True)


def test_gpt2_vocab_and_merges_match_reference(shared_data, tmp_path):
    from transformers import GPT2TokenizerFast

    vocab_txt = shared_data / "vocab" / "huggingface_gpt2_vocab.txt"
    tok = load_tokenizer(vocab_txt)  # merges found beside it
    tokens = vocab_txt.read_text(encoding="utf-8").split("\n")[:-1]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (tmp_path / "merges.txt").write_bytes((shared_data / "vocab" / "huggingface_gpt2_merges.txt").read_bytes())
    ref = GPT2TokenizerFast.from_pretrained(str(tmp_path))
    assert tok.kind == "bpe" and tok.vocab_size == 50265
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 50264)
    lines = _head(shared_data / "corpora" / "en" / "moby-dick" / "moby_dick.txt", 8000).split("\n")
    for text in SAMPLES[:-1] + lines:
        ids = tok.encode(text).ids
        assert ids == ref(text)["input_ids"], text
        assert tok.decode(ids) == text  # byte-level BPE is lossless
    # its special tokens (RoBERTa order) are matched when written in text, as in PTB's "<unk>"
    enc = tok.encode("a <unk> b")
    assert enc.tokens == ["a", "Ġ", "<unk>", "Ġb"] and enc.special == [False, False, True, False]
    # a vocab.json + merges.txt directory loads the same way
    assert load_tokenizer(tmp_path).encode(SAMPLES[0]).ids == tok.encode(SAMPLES[0]).ids


def test_sentencepiece_model_matches_sentencepiece(shared_data):
    import sentencepiece as spm

    path = shared_data / "vocab" / "cluecorpussmall_spm.model"
    tok = load_tokenizer(path)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert tok.kind == "unigram" and tok.vocab_size == sp.get_piece_size()
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    lines = _head(shared_data / "corpora" / "zh" / "cluecorpus-small-sample" / "CLUECorpusSmall_sampled.txt",
                  100_000).split("\n")[:25]
    for text in SAMPLES + lines:
        ids = tok.encode(text).ids
        assert ids == sp.encode(text), text
        assert tok.decode(ids).replace(" ", "") == sp.decode(ids).replace(" ⁇ ", "").replace(" ", "")
    enc = tok.encode(lines[0][:80])
    for t, (s, e) in zip(enc.tokens, enc.offsets):  # offsets point at the piece (NFKC aside)
        assert t.lstrip("▁") == "" or lines[0][s:e].strip() != ""


def test_chinese_sentencepiece_loads_as_xlnet_tokenizer_and_matches_hf(shared_data, tmp_path):
    """The Chinese sentencepiece model as XLNet's tokenizer: XLNet's text preprocessing and
    its ``a [SEP] b [SEP] [CLS]`` template, against transformers' XLNetTokenizer (offline,
    from the same file) on real Chinese lines and ChnSentiCorp reviews."""
    transformers = pytest.importorskip("transformers")
    path = shared_data / "vocab" / "cluecorpussmall_spm.model"
    (tmp_path / "spiece.model").write_bytes(path.read_bytes())
    try:
        ref = transformers.XLNetTokenizer.from_pretrained(
            str(tmp_path), cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]")
    except (ImportError, ValueError, OSError) as err:
        pytest.skip(f"transformers cannot build XLNetTokenizer offline here: {err}")
    tok = load_tokenizer(path, xlnet=True)
    lines = [x for x in _head(shared_data / "corpora" / "zh" / "cluecorpus-small-sample" /
                              "CLUECorpusSmall_sampled.txt", 120_000).split("\n")[:150] if x.strip()]
    reviews = [row.split("\t", 1)[1] for row in
               (shared_data / "labeled" / "zh" / "chnsenticorp" / "dev.tsv").read_text().splitlines()[1:21]]
    assert tok.backend.normalizer.normalize_str("Mühlberg ``x''") == 'Muhlberg "x"'  # XLNet's preprocessing
    for text in SAMPLES + lines + reviews:
        want = ref(text, add_special_tokens=True, return_token_type_ids=True)
        assert tok.encode(text, add_special_tokens=True).ids == want["input_ids"], text
        assert tok.build_inputs(tok.encode(text).ids, cls_last=True) == (want["input_ids"], want["token_type_ids"])
    for a, b in zip(reviews[::2], reviews[1::2]):
        want = ref(a, b, return_token_type_ids=True)
        got = tok.build_inputs(tok.encode(a).ids, tok.encode(b).ids, cls_last=True)
        assert got == (want["input_ids"], want["token_type_ids"])


def test_train_wordpiece_on_gutenberg(shared_data):
    books = sorted((shared_data / "corpora" / "en" / "gutenberg").glob("*.txt"))
    train = [line for b in books[:6] for line in _head(b, 60_000).split("\n") if line.strip()]
    tok = train_tokenizer(texts=train, kind="wordpiece", vocab_size=3000)
    assert tok.vocab_size == 3000 and tok.pad_id == 0 and tok.mask_id == 4
    held = [line for line in _head(books[-1], 50_000).split("\n") if line.strip()]
    arr = tok.encode_arrays(held)
    assert np.mean(arr.ids == tok.unk_id) < 0.01
    # words per line from the pre-tokenizer equal the word starts recorded per line
    pre = tok.backend.pre_tokenizer
    norm = tok.backend.normalizer
    words = [len(pre.pre_tokenize_str(norm.normalize_str(line))) for line in held]
    starts = np.add.reduceat(arr.word_starts.astype(int), np.cumsum(arr.lengths) - arr.lengths)
    assert starts.tolist() == words
    # the text is recovered from the pieces
    checked = 0
    for line in held[:60]:
        enc = tok.encode(line)
        if tok.unk_id in enc.ids:
            continue
        glued = "".join(t[2:] if t.startswith("##") else t for t in enc.tokens)
        assert glued == "".join(norm.normalize_str(line).split())
        checked += 1
    assert checked > 40


def test_train_chinese_vocabulary_on_cluecorpus(shared_data):
    path = shared_data / "corpora" / "zh" / "cluecorpus-small-sample" / "CLUECorpusSmall_sampled.txt"
    lines = [x for x in _head(path, 400_000).split("\n") if x.strip()]
    train, held = lines[:-30], lines[-30:]
    tok = train_tokenizer(texts=train, kind="wordpiece", vocab_size=4000)
    assert 3000 < tok.vocab_size <= 4000  # ~3,000 distinct characters, then merges seen twice
    n_cjk = unk = 0
    for line in held:
        enc = tok.encode(line, segmenter=get_segmenter("jieba"))
        for t, (s, e) in zip(enc.tokens, enc.offsets):
            if is_cjk(line[s]):  # BERT-Chinese: one CJK character, one token
                n_cjk += 1
                assert e - s == 1 and (t == line[s] or t == "[UNK]")
                unk += t == "[UNK]"
        # word starts follow jieba for the Chinese words
        jieba_starts = {s for s, _ in get_segmenter("jieba").spans(line)}
        for (s, _), w in zip(enc.offsets, enc.word_starts):
            if is_cjk(line[s]):
                assert w == (s in jieba_starts)
    assert n_cjk > 1000 and unk / n_cjk < 0.05
    counts = Counter(c for line in train for c in line if is_cjk(c))
    vocab = tok.get_vocab()
    assert all(c in vocab for c, n in counts.items() if n >= 2)  # every repeated character is kept
    char = train_tokenizer(texts=train, kind="char", vocab_size=3000)
    enc = char.encode(held[0])
    assert all(len(t.removeprefix("##")) == 1 for t in enc.tokens if t != "[UNK]")
