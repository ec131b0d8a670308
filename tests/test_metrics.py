"""Task metrics against cases worked out by hand (the working is in the comments)."""
import math

import pytest

from sesame.errors import ConfigError
from sesame.tasks import metrics as M


def test_binary_accuracy_macro_f1_and_mcc():
    golds, preds = [0, 0, 1, 1], [0, 1, 1, 1]
    assert M.accuracy(preds, golds) == 0.75
    # class 0: tp 1, fp 0, fn 1 -> F1 = 2/(2+0+1) = 2/3 ; class 1: tp 2, fp 1, fn 0 -> 4/5
    assert M.macro_f1(preds, golds) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # TP 2, TN 1, FP 1, FN 0: (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1) = 2 / sqrt(12)
    assert M.matthews_corrcoef(preds, golds) == pytest.approx(2 / math.sqrt(12))


def test_three_class_mcc_and_macro_f1():
    golds, preds = [0, 1, 2, 0, 1, 2], [0, 1, 1, 0, 2, 2]
    # c = 4 correct of s = 6; true counts t = (2, 2, 2), predicted p = (2, 2, 2)
    # (c*s - sum p*t) / sqrt((s^2 - sum p^2)(s^2 - sum t^2)) = (24 - 12) / sqrt(24 * 24) = 0.5
    assert M.matthews_corrcoef(preds, golds) == pytest.approx(0.5)
    # class 0: F1 1; class 1: tp 1 fp 1 fn 1 -> 0.5; class 2: tp 1 fp 1 fn 1 -> 0.5 -> mean 2/3
    assert M.macro_f1(preds, golds) == pytest.approx(2 / 3)
    cm = M.confusion_matrix(preds, golds, 3)
    assert cm.tolist() == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]  # rows gold, columns predicted


def test_mcc_extremes():
    assert M.matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert M.matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert M.matthews_corrcoef([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0  # constant prediction: 0, not NaN


def test_macro_f1_uses_classes_seen_in_gold_or_predicted():
    # class 2 never appears: it must not drag the mean down
    assert M.macro_f1([0, 1], [0, 1]) == 1.0


# ---------------------------------------------------------------- conlleval


def test_conlleval_counts_chunks_like_the_perl_script():
    golds = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    preds = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O"]]
    # gold chunks: PER[0,2) LOC[3,4) | ORG[0,1)             -> 3
    # predicted:   PER[0,2) ORG[3,4) | ORG[0,1) (I- opens)   -> 3
    # correct: PER, and the sentence-initial I-ORG matches B-ORG -> 2; P = R = F1 = 2/3
    s = M.conlleval(golds, preds)
    assert (s["correct"], s["found_pred"], s["found_gold"]) == (2, 3, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    # token accuracy: B-LOC/B-ORG and B-ORG/I-ORG differ -> 4 of 6 tags equal
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_type"]["PER"]["f1"] == 1.0
    assert s["per_type"]["LOC"]["precision"] == 0.0 and s["per_type"]["LOC"]["recall"] == 0.0
    # ORG: predicted 2, gold 1, correct 1 -> P 1/2, R 1, F1 2/3
    assert s["per_type"]["ORG"]["f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("tags, expected", [
    (["I-PER", "I-PER", "O"], [("PER", 0, 2)]),  # I- after the boundary starts a chunk
    (["O", "I-ORG", "B-ORG", "I-ORG"], [("ORG", 1, 2), ("ORG", 2, 4)]),  # B- splits two chunks of a type
    (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),  # a type change ends and starts chunks
    (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
    (["I-MISC", "I-PER", "I-PER"], [("MISC", 0, 1), ("PER", 1, 3)]),  # IOB1: I- of a new type opens
    (["B-creative-work", "I-creative-work", "O"], [("creative-work", 0, 2)]),  # hyphen inside the type
    (["O", "O"], []),
])
def test_conlleval_chunk_edges(tags, expected):
    assert M.chunks(tags) == expected


def test_conlleval_type_change_inside_a_chunk_is_wrong():
    s = M.conlleval([["B-PER", "I-PER", "O"]], [["B-PER", "I-LOC", "O"]])
    # predicted PER[0,1) and LOC[1,2) against gold PER[0,2): nothing correct
    assert (s["correct"], s["found_pred"], s["found_gold"]) == (0, 2, 1)
    assert s["f1"] == 0.0


def _conlleval_state_machine(golds, preds):
    """conlleval.pl's own token-by-token loop (inCorrect flag, boundary lines as O),
    written out independently of ``M.chunks`` to cross-check it."""
    correct = found_gold = found_pred = 0
    in_correct = False
    last_g, last_gt, last_p, last_pt = "O", "", "O", ""
    stream = [t for g, p in zip(golds, preds) for t in [*zip(g, p), ("O", "O")]]
    for g_tag, p_tag in stream:
        g, gt = M.split_tag(g_tag)
        p, pt = M.split_tag(p_tag)
        end_g, end_p = M._chunk_end(last_g, g, last_gt, gt), M._chunk_end(last_p, p, last_pt, pt)
        start_g, start_p = M._chunk_start(last_g, g, last_gt, gt), M._chunk_start(last_p, p, last_pt, pt)
        if in_correct:
            if end_g and end_p and last_gt == last_pt:
                in_correct = False
                correct += 1
            elif end_g != end_p or gt != pt:
                in_correct = False
        if start_g and start_p and gt == pt:
            in_correct = True
        found_gold += start_g
        found_pred += start_p
        last_g, last_gt, last_p, last_pt = g, gt, p, pt
    return correct + in_correct, found_pred, found_gold


def test_conlleval_chunk_sets_equal_the_perl_state_machine():
    import random

    rng = random.Random(0)
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y", "B-a-b", "I-a-b"]
    for _ in range(300):
        lengths = [rng.randint(1, 8) for _ in range(rng.randint(1, 4))]
        golds = [[rng.choice(tags) for _ in range(n)] for n in lengths]
        preds = [[rng.choice(tags) for _ in range(n)] for n in lengths]
        s = M.conlleval(golds, preds)
        assert (s["correct"], s["found_pred"], s["found_gold"]) == _conlleval_state_machine(golds, preds)


def test_conlleval_rejects_misaligned_sentences():
    with pytest.raises(ConfigError, match="sentence 0"):
        M.conlleval([["O", "O"]], [["O"]])


def test_iob1_to_bio():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]
    assert M.iob1_to_bio(tags) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]
    # the conversion keeps the chunks conlleval reads from IOB1
    assert M.chunks(M.iob1_to_bio(tags)) == M.chunks(tags)


# ---------------------------------------------------------------- SQuAD / CMRC


@pytest.mark.parametrize("text, normal", [
    ("The  Cat's, hat!", "cats hat"),  # lower, drop punctuation, drop 'the', squeeze spaces
    ("an apple a day", "apple day"),
    ("Theatre", "theatre"),  # articles only as whole words
    ("  (1,000) ", "1000"),
])
def test_squad_normalisation(text, normal):
    assert M.squad_normalize(text) == normal


def test_squad_exact_and_f1():
    assert M.squad_exact("Paris.", ["paris", "France"]) == 1.0
    # pred tokens [cat, sat], gold [cat, sat, down]: common 2 -> P 1, R 2/3 -> F1 0.8
    assert M.squad_f1("the cat sat", ["a cat sat down"]) == pytest.approx(0.8)
    assert M.squad_f1("dog", ["a cat sat down", "the dog"]) == 1.0  # best over the gold answers
    assert M.squad_f1("", [""]) == 1.0 and M.squad_f1("x", [""]) == 0.0  # unanswerable
    s = M.qa_scores({"q1": "Paris", "q2": "the cat sat"}, {"q1": ["Paris"], "q2": ["cat sat down"], "q3": ["x"]})
    # q1: EM 1 F1 1; q2: EM 0 F1 0.8; q3 missing: 0 -> EM 1/3, F1 1.8/3
    assert s["exact_match"] == pytest.approx(1 / 3) and s["f1"] == pytest.approx(0.6) and s["missing"] == 1


def test_cmrc_segmentation_and_punctuation():
    assert M.cmrc_segment("北京Olympic Games 2008年") == ["北", "京", "olympic", "games", "2008", "年"]
    assert M.cmrc_segment("《红楼梦》", remove_punct=True) == ["红", "楼", "梦"]
    assert M.cmrc_segment("3.5米", remove_punct=True) == ["3.5", "米"]  # numbers stay whole
    assert M.cmrc_remove_punct("《红楼梦》。") == "红楼梦"


def test_treebank_words_match_nltk():
    # the official CMRC script splits English runs with nltk's word_tokenize (Treebank rules)
    nltk_tokenize = pytest.importorskip("nltk.tokenize")
    texts = ["don't stop", "i cannot go", 'he said "hi" .', "1,000 people, 3.5 km.", "it's rock 'n' roll",
             "(a) [b] {c}", "wait... what?!", "a--b", "'quoted'", "roy h. reinhart", "1982–2013", "#1 @home"]
    reference = nltk_tokenize.NLTKWordTokenizer()
    for text in texts:
        assert M.treebank_words(text) == reference.tokenize(text), text


def test_cmrc_exact_and_f1():
    assert M.cmrc_exact("《红楼梦》", ["红楼梦"]) == 1.0
    assert M.cmrc_exact("红楼", ["红楼梦"]) == 0.0
    # answer [北 京 大 学], prediction [北 京 的 大 学]: longest common substring 2
    # P = 2/5, R = 2/4 -> F1 = 2 * 0.4 * 0.5 / 0.9 = 4/9
    assert M.cmrc_f1("北京的大学", ["北京大学"]) == pytest.approx(4 / 9)
    # LCS is a contiguous run: [a b c d] vs [a c]: 1 -> P 1/2, R 1/4 -> F1 1/3
    assert M.cmrc_f1("甲丙", ["甲乙丙丁"]) == pytest.approx(1 / 3)
    assert M.cmrc_f1("无关", ["北京"]) == 0.0
    s = M.qa_scores({"a": "北京的大学"}, {"a": ["上海", "北京大学"]}, style="cmrc2018")
    assert s["f1"] == pytest.approx(4 / 9) and s["exact_match"] == 0.0


def test_longest_common_substring():
    assert M.longest_common_substring("abcde", "xbcdy") == 3
    assert M.longest_common_substring("", "abc") == 0


# ---------------------------------------------------------------- BLEU / ROUGE


def test_bleu_hand_computed():
    # hyp "the cat sat on mat" (5) vs ref "the cat sat on the mat" (6)
    # p1 = 5/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; BP = exp(1 - 6/5)
    # BLEU = exp(-0.2) * (1 * 3/4 * 2/3 * 1/2) ** (1/4) = exp(-0.2) * 0.25 ** 0.25
    pytest.importorskip("sacrebleu")
    b = M.bleu(["the cat sat on mat"], ["the cat sat on the mat"])
    assert b["bleu"] == pytest.approx(math.exp(-0.2) * 0.25 ** 0.25, abs=1e-6)
    assert b["precisions"] == pytest.approx([1.0, 0.75, 2 / 3, 0.5], abs=1e-6)
    assert M.bleu(["a b c d e"], [["x", "a b c d e"]])["bleu"] == pytest.approx(1.0)  # multiple references


def test_bleu_chinese_uses_characters():
    # 7 characters each, all n-grams over characters: p1 5/7, p2 4/6, p3 3/5, p4 2/4, BP 1
    # (5*4*3*2 / (7*6*5*4)) ** (1/4) = (1/7) ** 0.25
    pytest.importorskip("sacrebleu")
    b = M.bleu(["我们喜欢吃苹果"], ["我们喜欢吃香蕉"], tokenize="zh")
    assert b["bleu"] == pytest.approx((1 / 7) ** 0.25, abs=1e-6)


def test_rouge_hand_computed():
    pytest.importorskip("rouge_score")
    r = M.rouge(["the cat sat"], ["the cat was sat"])
    # rouge1: 3 common, P 3/3, R 3/4 -> 6/7; rouge2: {the cat} common, P 1/2, R 1/3 -> 0.4
    # rougeL: LCS "the cat sat" = 3 -> 6/7
    assert r["rouge1"] == pytest.approx(6 / 7) and r["rouge2"] == pytest.approx(0.4)
    assert r["rougeL"] == pytest.approx(6 / 7)
    z = M.rouge(["我爱北京"], ["我爱上海"], language="zh")
    # characters: rouge1 2 of 4 each side -> 0.5; rouge2: {我爱} of 3 bigrams -> 1/3
    assert z["rouge1"] == pytest.approx(0.5) and z["rouge2"] == pytest.approx(1 / 3)


def test_metric_inputs_must_align():
    with pytest.raises(ConfigError, match="2 predictions but 1 references"):
        M.accuracy([0, 1], [0])
