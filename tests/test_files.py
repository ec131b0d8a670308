"""Reading a user's labeled files (sesame.tasks.files / tables / datasets): every format,
column mapping, and each kind of bad input as a named error or a counted decision."""
import json
import sys

import pytest

from sesame.errors import ConfigError, DataError
from sesame.tasks import datasets as D
from sesame.tasks.files import balanced_weights, label_counts, normalise_tags, read_file


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


# ---------------------------------------------------------------- formats


def test_csv_follows_rfc_4180(tmp_path):
    path = write(tmp_path, "r.csv", 'id,review,stars\n1,"good, really",pos\n2,"two\nlines ""quoted""",neg\n'
                                    '3,plain,pos\n')
    data = read_file(path, {"columns": {"text": "review", "label": "stars"}})
    assert [ex.text for ex in data] == ["good, really", 'two\nlines "quoted"', "plain"]
    assert data.labels == ["neg", "pos"] and [ex.id for ex in data] == ["1", "2", "3"]
    assert data.where == ["r.csv:2", "r.csv:3", "r.csv:5"]  # a record's first line, across embedded newlines


def test_tsv_keeps_quotes_as_text_and_columns_by_index(tmp_path):
    path = write(tmp_path, "r.tsv", '1\the said "hi\n0\tno\n')
    data = read_file(path, {"header": False, "columns": {"label": 0, "text": 1}})
    assert data[0].text == 'he said "hi' and data[0].label == "1"
    pair = read_file(write(tmp_path, "p.tsv", "text_a\ttext_b\tlabel\nx\ty\t1\n"), {"task": "pair-classification"})
    assert (pair[0].text, pair[0].text_b) == ("x", "y")


def test_jsonl_json_and_squad(tmp_path):
    rows = [{"sentence": "ok", "label": 1}, {"sentence": "bad", "label": 0}]
    jl = read_file(write(tmp_path, "a.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n"))
    js = read_file(write(tmp_path, "a.json", json.dumps(rows)))
    assert [ex.label for ex in jl] == [ex.label for ex in js] == ["1", "0"] and jl.labels == ["0", "1"]
    squad2 = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "a", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True}]}]}]}
    qa = read_file(write(tmp_path, "s.json", json.dumps(squad2)), {"task": "qa"})
    assert qa[0].answers[0].start == 12 and qa[1].impossible and len(qa) == 2
    table_qa = read_file(write(tmp_path, "q.jsonl", json.dumps(
        {"question": "Where?", "context": "Paris is in France.", "answers": {"text": ["France"], "answer_start": [12]}})
        + "\n"), {"task": "qa"})
    assert table_qa[0].answers[0].text == "France" and table_qa[0].answers[0].start == 12


def test_conll_columns_docstart_and_schemes(tmp_path):
    text = ("-DOCSTART- -X- O\n\nEU NNP S-ORG\nrejects VBZ O\nGerman JJ B-MISC\ncall NN E-MISC\n\n"
            "Peter NNP I-PER\nBlack NNP I-PER\n")
    data = read_file(write(tmp_path, "n.conll", text), {"task": "tagging"})
    assert data[0].tags == ["B-ORG", "O", "B-MISC", "I-MISC"] and data[1].tags == ["B-PER", "I-PER"]
    assert data.counts["docstart_lines"] == 1 and data.counts["tags_converted"] == 3
    assert data.counts["scheme_iobes"] == 1 and data.counts["scheme_iob1"] == 1
    cols = read_file(write(tmp_path, "c.txt", "EU B-ORG NNP\nrejects O VBZ\n"), {"task": "tagging",
                                                                                 "columns": {"tags": 1}})
    assert cols[0].tags == ["B-ORG", "O"] and cols.labels == ["O", "B-ORG", "I-ORG"]
    assert normalise_tags(["I-X", "I-X", "B-X", "O"], "here")[0] == ["B-X", "I-X", "B-X", "O"]
    jl = read_file(write(tmp_path, "t.jsonl", json.dumps({"tokens": ["New", "York"], "tags": ["B-LOC", "I-LOC"]})),
                   {"task": "tagging"})
    assert jl[0].words == ["New", "York"] and jl.labels == ["O", "B-LOC", "I-LOC"]


def test_parquet_with_pyarrow_and_a_clear_error_without(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"text": ["good", "bad"], "label": [1, 0]}), path)
    assert [ex.label for ex in read_file(path)] == ["1", "0"]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match="Parquet needs pyarrow"):
        read_file(path)


def test_dataframes_and_hf_datasets(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"review": ["good", "bad"], "stars": [5, 1]})
    data = read_file(frame, {"columns": {"text": "review", "label": "stars"}})
    assert [ex.label for ex in data] == ["5", "1"] and data.path == "DataFrame"
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["good", "bad", "fine", "awful"], "label": [1, 0, 1, 0]})
    splits = D.file_splits(datasets.DatasetDict({"train": ds, "validation": ds.select([0, 1])}))
    assert len(splits.splits["train"]) == 4 and len(splits.splits["dev"]) == 2 and splits.labels == ["0", "1"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, text, spec, message", [
    ("a.csv", "review,stars\nok,1\n", {"columns": {"text": "body"}}, r"no column 'body'.*columns are review, stars"),
    ("a.csv", "body,stars\nok,1\n", {}, r"no text column .*columns are body, stars.*--text-column"),
    ("a.csv", "", {}, r"a\.csv: the file is empty"),
    ("a.csv", "text,label\n", {}, r"only a header \(text, label\), no rows"),
    ("a.csv", "text,label\nok,1\nshort\n", {}, r"a\.csv:3: 1 field\(s\) but the header has 2"),
    ("a.csv", "text,label\nok,1\nfine, \n", {}, r"a\.csv:3: blank label in column 'label'"),
    ("a.conll", "EU B-ORG\nrejects\n", {"task": "tagging"}, r"a\.conll:2: expected a token and a tag, got 'rejects'"),
    ("a.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', {"task": "tagging"}, r"a\.jsonl:1: 2 tokens but 1 tags"),
    ("a.conll", "EU X-ORG\n", {"task": "tagging"}, r"tag 'X-ORG' is not O or PREFIX-TYPE"),
    ("a.jsonl", '{"text": "a"}\n{oops\n', {}, r"a\.jsonl:2: not valid JSON"),
    ("a.xml", "<x/>", {}, r"cannot tell the format .*--format"),
])
def test_bad_input_is_named(tmp_path, name, text, spec, message):
    with pytest.raises(DataError, match=message):
        read_file(write(tmp_path, name, text), spec)


def test_invalid_utf8_is_counted_and_replaced_or_refused(tmp_path):
    path = write(tmp_path, "u.csv", b"text,label\nok,1\n\xff\xfe bad,0\n")
    data = read_file(path)
    assert data.counts == {"invalid_utf8_lines": 1} and data[1].text.startswith("\ufffd")
    with pytest.raises(DataError, match=r"u\.csv:3: not valid UTF-8.*drop --strict"):
        read_file(path, {"strict": True})


def test_qa_answers_outside_the_context_are_counted_and_skipped_in_training(tmp_path):
    doc = {"data": [{"paragraphs": [{"context": "abc Paris", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "Paris", "answer_start": 4}]},
        {"id": "q2", "question": "?", "answers": [{"text": "Rome", "answer_start": 0}]}]}]}]}
    path = write(tmp_path, "s.json", json.dumps(doc))
    train = read_file(path, {"task": "qa"})
    assert [ex.id for ex in train] == ["q1"]
    assert train.counts == {"answers_not_in_context": 1, "questions_skipped_answer_not_in_context": 1}
    assert len(read_file(path, {"task": "qa"}, train=False)) == 2  # kept as references for scoring


def test_labels_come_from_train_and_unseen_ones_are_named(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\na,x\nb,y\nc,x\n")
    dev = write(tmp_path, "dev.csv", "text,label\nd,x\ne,z\n")
    with pytest.raises(DataError, match=r"dev\.csv:3: dev label 'z' never occurs in train \(train has x, y\)"):
        D.file_splits(train, dev)
    test = write(tmp_path, "test.csv", "text\nunlabeled\n")
    splits = D.file_splits(train, test=test)
    assert not splits.splits["test"].labeled and splits.splits["test"][0].label is None
    assert any("predictions only" in n for n in splits.notes)
    counts = label_counts(splits.splits["train"], "classification")
    assert balanced_weights({"x": 3, "y": 1}, ["x", "y"]) == pytest.approx([4 / 6, 2.0]) and counts


def test_dev_is_carved_from_train_with_a_fixed_seed_and_said(tmp_path):
    rows = "\n".join(f"text {i},{i % 2}" for i in range(50))
    train = write(tmp_path, "train.csv", "text,label\n" + rows + "\n")
    one, two = D.file_splits(train, dev_fraction=0.2), D.file_splits(train, dev_fraction=0.2)
    assert len(one.splits["dev"]) == 10 and len(one.splits["train"]) == 40
    assert [ex.text for ex in one.splits["dev"]] == [ex.text for ex in two.splits["dev"]]
    assert not {ex.text for ex in one.splits["dev"]} & {ex.text for ex in one.splits["train"]}
    assert any("20% of train, seed 0" in n for n in one.notes)
    with pytest.raises(ConfigError, match="dev_fraction = 1.5"):
        D.file_splits(train, dev_fraction=1.5)
    with pytest.raises(DataError, match="training file has no label column"):
        D.file_splits(write(tmp_path, "nolabel.csv", "text\na\n"))


# ---------------------------------------------------------------- the named sets' root


def test_data_root_order_and_one_error_naming_all_three(tmp_path, monkeypatch):
    (tmp_path / "mine" / "labeled").mkdir(parents=True)
    monkeypatch.delenv(D.ENV, raising=False)
    assert D.data_root(tmp_path / "mine") == tmp_path / "mine" / "labeled"
    monkeypatch.setenv(D.ENV, str(tmp_path / "mine"))
    assert D.data_root() == tmp_path / "mine" / "labeled"
    monkeypatch.delenv(D.ENV)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert D.data_root().resolve() == (tmp_path / "shared" / "data").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"--data-dir DIR, set SESAME_DATA=DIR, or run where ../shared/data exists"):
        D.data_root()
    with pytest.raises(DataError, match=r"from \$SESAME_DATA\) is not a folder"):
        monkeypatch.setenv(D.ENV, str(tmp_path / "nowhere"))
        D.data_root()


def test_unknown_sets_point_to_the_file_route():
    with pytest.raises(ConfigError, match=r"did you mean `sst2`"):
        D.dataset_spec("sst3")
    with pytest.raises(ConfigError, match=r"unknown data set 'imdb'; for your own files use --train FILE"):
        D.dataset_spec("imdb")


def test_no_data_path_comes_from_the_package_location():
    from pathlib import Path

    import sesame

    for path in Path(sesame.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not ("__file__" in text and "data" in text.split("__file__", 1)[1][:80]), path
