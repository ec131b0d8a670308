"""Readers on the real labeled sets (skipped when ../shared/data is absent), bad input
named by file and line, and the evaluation report files."""
import gzip
import json
from pathlib import Path

import pytest

from sesame.errors import DataError
from sesame.tasks import readers as R
from sesame.tasks.report import markdown, write_report



@pytest.fixture(scope="module")
def data(shared_data):
    if not (shared_data / "labeled").is_dir():
        pytest.skip(f"the labeled sets are absent from {shared_data}")
    return shared_data


def test_english_classification_sets(data):
    sst = R.read_sst2(data / "labeled/en/sst2/dev.tsv")
    assert len(sst) == 872 and sst.labels == ["0", "1"]
    assert sst[0].text == "one long string of cliches ." and sst[0].label == "0"
    assert len(R.read_sst2(data / "labeled/en/sst2/test.tsv")) == 1821
    cola = R.read_senteval(data / "labeled/en/senteval/CoLA/dev.tsv")  # sentence<TAB>label
    assert len(cola) == 516 and cola[0].text == "somebody just left guess who" and cola[0].label == "1"
    cr = R.read_senteval(data / "labeled/en/senteval/CR/train.tsv")  # label<TAB>sentence, one empty line
    assert len(cr) == 3015 and cr.counts == {"empty_texts": 1}
    mrpc = R.read_mrpc(data / "labeled/en/mrpc/msr_paraphrase_test.txt")
    assert len(mrpc) == 1725 and mrpc[0].text_b and mrpc.labels == ["0", "1"]


def test_chinese_classification_sets(data):
    chn = R.read_chnsenticorp(data / "labeled/zh/chnsenticorp/dev.tsv")
    assert len(chn) == 1200 and chn.labels == ["0", "1"]
    unlabeled = R.read_chnsenticorp(data / "labeled/zh/chnsenticorp/test_nolabel.tsv")
    assert len(unlabeled) == 1200 and unlabeled[0].label is None
    fc = data / "labeled/zh/fewclue"
    tnews = R.read_fewclue(fc / "tnews/test_public.json", "tnews")
    assert len(tnews.labels) == 15 and tnews.labels[0] == "news_story" and len(tnews) == 2010
    ocnli = R.read_fewclue(fc / "ocnli/dev_few_all.json", "ocnli")
    assert ocnli.labels == ["contradiction", "entailment", "neutral"] and ocnli[0].text_b
    bustm = R.read_fewclue(fc / "bustm/test.json", "bustm")
    assert len(bustm) == 2000 and bustm[0].label is None  # the submission split has no labels


def test_ner_sets(data):
    conll = R.read_conll2003(data / "labeled/en/conll2003/dev.txt")
    assert len(conll) == 3250 and conll.counts["docstart_lines"] == 216
    assert conll.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert conll[0].words[:3] == ["CRICKET", "-", "LEICESTERSHIRE"] and conll[0].tags[2] == "B-ORG"
    wnut = R.read_wnut17(data / "labeled/en/wnut17/wnut17train.conll")  # '<TAB>'-only lines end sentences
    assert len(wnut) == 3394 and "B-creative-work" in wnut.labels
    msra = R.read_msra(data / "labeled/zh/msra-ner/dev.tsv")
    assert len(msra) == 2318 and msra.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    assert all(len(ex.words) == len(ex.tags) for ex in msra)


def test_cmrc2018_relocates_and_counts_answers(data):
    dev = R.read_cmrc2018(data / "labeled/zh/cmrc2018/cmrc2018_dev.json")
    assert len(dev) == 3219
    assert dev.counts["answer_starts_fixed"] == 7 and dev.counts["answers_not_in_context"] == 193
    for ex in dev:
        for a in ex.answers:
            assert a.start == -1 or ex.context[a.start:a.start + len(a.text)] == a.text
    assert dev[0].answers[0].text == "光荣和ω-force"


def test_multiple_choice_sets(data):
    c3 = R.read_c3(data / "labeled/zh/c3/dev.json")
    assert len(c3) == 3816 and c3[0].options[c3[0].label] == "工作"
    assert {len(ex.options) for ex in c3} == {2, 3, 4}
    chid = R.read_chid(data / "labeled/zh/fewclue/chid/dev_few_all.json")
    assert len(chid) == 202 and chid[0].blank == "#idiom#" and len(chid[0].options) == 7


def test_translation_pairs(data):
    tat = R.read_tatoeba(data / "translation/tatoeba-cmn-eng/cmn.txt")
    assert tat[0].source == "Hi." and tat[0].target == "嗨。" and len(tat) > 29000
    assert R.read_tatoeba(data / "translation/tatoeba-cmn-eng/cmn.txt", source="zh")[0].source == "嗨。"
    m30k = R.read_multi30k(data / "translation/multi30k", "val", "en", "de")
    assert len(m30k) == 1014 and m30k[0].target.startswith("Eine Gruppe von Männern")


# ---------------------------------------------------------------- bad input


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.tsv: no such file"):
        R.read_sst2(tmp_path / "nope.tsv")


@pytest.mark.parametrize("reader, text, message", [
    (R.read_sst2, "sentence\tlabel\nfine\t1\n", r"x\.txt:1: expected the header"),
    (R.read_sst2, "label\tsentence\n1\tok\n2\n", r"x\.txt:3: expected 2 tab-separated fields"),
    (R.read_sst2, "label\tsentence\n5\tok\n", r"labels \['5'\] are not in the label list"),
    (R.read_conll2003, "EU NNP B-NP B-ORG\nrejects\n", r"x\.txt:2: expected a word and a tag"),
    (R.read_conll2003, "EU NNP B-NP X-ORG\n", r"x\.txt:1: tag 'X-ORG'"),
    (R.read_msra, "text_a\tlabel\n我 们\tO\n", r"x\.txt:2: 2 characters but 1 tags"),
    (R.read_mrpc, "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n7\t1\t2\ta\tb\n", r"x\.txt:2: quality '7'"),
    (lambda p: R.read_fewclue(p, "bustm"), '{"sentence1": "a", "sentence2": "b"}\n{oops\n',
     r"x\.txt:2: not valid JSON"),
    (lambda p: R.read_fewclue(p, "ocnli"), '{"sentence1": "a", "label": "neutral"}\n',
     r"x\.txt:1: missing field 'sentence2'"),
    (R.read_chid, '{"content": "no blank", "candidates": ["a"], "answer": 0}\n', r"x\.txt:1: content has no"),
    (R.read_tatoeba, "Hi.\t嗨。\tcc\nonly english\n", r"x\.txt:2: expected 'english<TAB>chinese"),
])
def test_malformed_lines_name_file_and_line(tmp_path, reader, text, message):
    path = tmp_path / "x.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        reader(path)


def test_invalid_utf8_and_counted_decisions(tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_bytes(b"label\tsentence\n1\tok\n0\t\xff\xfe\n")
    with pytest.raises(DataError, match=r"x\.txt:3: not valid UTF-8"):
        R.read_sst2(bad)
    ok = tmp_path / "ok.tsv"
    ok.write_text("label\tsentence\n1\tgood\n\n0\t \n0\tbad\n", encoding="utf-8")
    data = R.read_sst2(ok)
    assert len(data) == 2 and data.counts == {"empty_lines": 1, "empty_texts": 1}
    iob1 = tmp_path / "iob1.txt"
    iob1.write_text("-DOCSTART- -X- O O\n\nPeter NNP B-NP I-PER\nBlack NNP I-NP I-PER\n\n", encoding="utf-8")
    ner = R.read_conll2003(iob1)
    assert ner[0].tags == ["B-PER", "I-PER"] and ner.counts["tags_converted"] == 1
    assert ner.counts["docstart_lines"] == 1


def test_multi30k_files_must_align(tmp_path):
    for lang, lines in (("en", "a\nb\n"), ("de", "x\n")):
        with gzip.open(tmp_path / f"val.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write(lines)
    with pytest.raises(DataError, match="has 2 lines but .* has 1"):
        R.read_multi30k(tmp_path, "val")


def test_squad_answer_offsets_are_checked(tmp_path):
    doc = {"data": [{"paragraphs": [{"context": "abc Paris def Paris", "qas": [
        {"id": "q", "question": "?", "answers": [{"text": "Paris", "answer_start": 13},
                                                 {"text": "Rome", "answer_start": 0}]}]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    data = R.read_squad(path)
    # 'Paris' at 13 is wrong: moved to the nearest occurrence (14); 'Rome' is nowhere: -1
    assert [a.start for a in data[0].answers] == [14, -1]
    assert data.counts == {"answer_starts_fixed": 1, "answers_not_in_context": 1}


# ---------------------------------------------------------------- reports


def test_report_files(tmp_path):
    result = {"task": "classification", "examples": 4, "metrics": {"accuracy": 0.75, "macro_f1": 0.7333},
              "per_class": {"0": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}},
              "labels": ["0", "1"], "confusion": [[1, 1], [0, 2]], "predictions": [{"id": "a", "label": "0"}]}
    files = write_report(result, tmp_path / "eval", "dev")
    assert set(files) == {"json", "markdown", "predictions", "confusion"}
    saved = json.loads(Path(files["json"]).read_text())
    assert saved["metrics"]["accuracy"] == 0.75 and "predictions" not in saved
    assert Path(files["confusion"]).read_bytes()[:4] == b"\x89PNG"
    table = markdown(result)
    assert "| 75.00 | 73.33 |" in table and "| 0 | 100.00 | 50.00 | 66.67 | 2 |" in table
