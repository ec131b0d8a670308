"""The named sets read through the file readers (their presets; skipped when ../shared/data
is absent), bad input named by file and line, and the evaluation report files."""
import gzip
import json
from pathlib import Path

import pytest

from sesame.errors import DataError
from sesame.tasks import readers as R
from sesame.tasks.datasets import read_split
from sesame.tasks.files import read_file
from sesame.tasks.report import markdown, write_report


@pytest.fixture(scope="module")
def data(shared_data):
    if not (shared_data / "labeled").is_dir():
        pytest.skip(f"the labeled sets are absent from {shared_data}")
    return shared_data


def test_english_classification_sets(data):
    sst = read_split("sst2", "dev")
    assert len(sst) == 872 and sst.labels == ["0", "1"]
    assert sst[0].text == "one long string of cliches ." and sst[0].label == "0"
    assert len(read_split("sst2", "test")) == 1821
    cola = read_split("cola", "dev")  # sentence<TAB>label
    assert len(cola) == 516 and cola[0].text == "somebody just left guess who" and cola[0].label == "1"
    cr = read_split("cr", "train")  # label<TAB>sentence, one empty text
    assert len(cr) == 3015 and cr.counts == {"empty_texts": 1}
    mrpc = read_split("mrpc", "test")  # quotes inside TSV fields are text
    assert len(mrpc) == 1725 and mrpc[0].text_b and mrpc.labels == ["0", "1"]


def test_chinese_classification_sets(data):
    chn = read_split("chnsenticorp", "dev")
    assert len(chn) == 1200 and chn.labels == ["0", "1"]
    unlabeled = read_file(data / "labeled/zh/chnsenticorp/test_nolabel.tsv", {"columns": {"text": "text_a"}})
    assert len(unlabeled) == 1200 and unlabeled[0].label is None and not unlabeled.labeled
    tnews = read_split("tnews", "test")
    assert len(tnews.labels) == 15 and "news_story" in tnews.labels and len(tnews) == 2010
    ocnli = read_split("ocnli", "dev")
    assert ocnli.labels == ["contradiction", "entailment", "neutral"] and ocnli[0].text_b


def test_ner_sets(data):
    conll = read_split("conll2003", "dev")
    assert len(conll) == 3250 and conll.counts["docstart_lines"] == 216
    assert conll.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert conll[0].words[:3] == ["CRICKET", "-", "LEICESTERSHIRE"] and conll[0].tags[2] == "B-ORG"
    wnut = read_split("wnut17", "train")  # '<TAB>'-only lines end sentences
    assert len(wnut) == 3394 and "B-creative-work" in wnut.labels
    msra = read_file(data / "labeled/zh/msra-ner/dev.tsv", {"task": "tagging", "columns": {"tokens": "text_a",
                                                                                           "tags": "label"}})
    assert len(msra) == 2318 and set(msra.labels) == {"O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG"}
    assert all(len(ex.words) == len(ex.tags) for ex in msra)


def test_cmrc2018_relocates_and_counts_answers(data):
    dev = read_split("cmrc2018", "dev")
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
    chid = read_split("chid", "dev")
    assert len(chid) == 202 and chid[0].blank == "#idiom#" and len(chid[0].options) == 7


def test_translation_pairs(data):
    tat = read_file(data / "translation/tatoeba-cmn-eng/cmn.txt",
                    {"task": "seq2seq", "format": "tsv", "header": False, "columns": {"source": 0, "target": 1}})
    assert tat[0].source == "Hi." and tat[0].target == "嗨。" and len(tat) > 29000
    m30k = R.read_multi30k(data / "translation/multi30k", "val", "en", "de")
    assert len(m30k) == 1014 and m30k[0].target.startswith("Eine Gruppe von Männern")


# ---------------------------------------------------------------- bad input


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.tsv: no such file"):
        read_file(tmp_path / "nope.tsv")


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
    data = read_file(path, {"task": "qa"}, train=False)
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
