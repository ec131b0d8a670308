"""Fine-tuning, evaluating and predicting on a user's own files, from Python and the CLI,
on a tiny random encoder over a small WordPiece vocabulary written by the test (no shared
data needed): labels as names, recorded data files, predictions-only test files, random
init, class weights, the [UNK] warning, one long-input policy, the inference verbs' file
input/output and their option checks."""
import json
import re
import subprocess
import sys

import pytest
import torch

import sesame
from sesame.cli.main import main
from sesame.config.run import load_config
from sesame.errors import ConfigError
from sesame.models import build_model, save_model
from sesame.pipelines import split_words, window_starts
from sesame.tasks.base import cut
from sesame.tokenize import load_tokenizer

POS = ["a wonderful film", "great acting", "i loved it", "brilliant story", "superb , moving"]
NEG = ["a boring mess", "awful plot", "i hated it", "dull and tedious", "terrible , slow"]
WORDS = sorted({w for t in POS + NEG for w in t.split()} | {"new", "york", ".", "(", "reuters", ")", "went", "to",
                                                          "john", "lives", "in", "paris", "the", "[MASK]"})
QUICK = ["--set", "train.steps=40", "--set", "train.batch_size=8", "--set", "train.lr=3e-3", "--set",
         "train.warmup=0", "--set", "train.threads=1", "--set", "train.eval_every=0", "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[w for w in WORDS if w != "[MASK]"]])
                    + "\n")
    return path


@pytest.fixture(scope="module")
def base(vocab, tmp_path_factory):
    tok = load_tokenizer(vocab)
    cfg = load_config("test-encoder").model.replace(vocab_size=tok.vocab_size, max_positions=32, dropout=0.0,
                                                    attention_dropout=0.0)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("base") / "model"
    save_model(build_model(cfg), out, extra={"tokenizer.json": tok.to_json()})
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rows = ["review,sentiment"] + [f'"{t}",{lab}' for i in range(6) for t, lab in
                                   ((POS[i % 5], "positive"), (NEG[i % 5], "negative"))]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    (folder / "dev.csv").write_text("review,sentiment\n" + "\n".join(
        [f"{t},positive" for t in POS[:3]] + [f"{t},negative" for t in NEG[:3]]) + "\n")
    (folder / "test.csv").write_text("review\ngreat acting\nawful plot\n")
    (folder / "inputs.txt").write_text("great acting\n\nawful plot\n")
    return folder


@pytest.fixture(scope="module")
def cli_run(base, files, tmp_path_factory, capsys_module=None):
    out = tmp_path_factory.mktemp("runs") / "reviews"
    code = main(["finetune", str(base), "--train", str(files / "train.csv"), "--dev", str(files / "dev.csv"),
                 "--test", str(files / "test.csv"), "--task", "classification", "--text-column", "review",
                 "--label-column", "sentiment", "--out", str(out), *QUICK])
    assert code == 0
    return out


def test_cli_file_route_learns_records_its_files_and_predicts_names(cli_run, files, capsys):
    summary = json.loads((cli_run / "summary.json").read_text())
    assert summary["labels"] == ["negative", "positive"] and summary["label_counts"] == {"positive": 6,
                                                                                          "negative": 6}
    assert summary["eval"]["dev"]["metrics"]["accuracy"] > 0.5  # above chance on separable toy data
    assert summary["eval"]["test"]["metrics"] is None  # no labels: predictions only
    preds = [json.loads(x) for x in open(summary["eval"]["test"]["files"]["predictions"])]
    assert [p["label"] for p in preds] == ["positive", "negative"]
    record = json.loads((cli_run / "model" / "finetune.json").read_text())
    assert record["files"]["train"] == str((files / "train.csv").resolve())
    assert record["data"]["columns"] == {"text": "review", "label": "sentiment"}
    capsys.readouterr()
    assert main(["classify", str(cli_run / "model"), "great acting", "awful plot"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["positive", "negative"]


def test_eval_rereads_recorded_files_or_takes_data(cli_run, files, capsys, tmp_path, monkeypatch):
    summary = json.loads((cli_run / "summary.json").read_text())
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # no ../shared/data here: the registry is never consulted
    assert main(["eval", str(cli_run / "model")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"] == pytest.approx(summary["eval"]["dev"]["metrics"])
    assert again["data"] == str((files / "dev.csv").resolve())
    assert main(["eval", str(cli_run / "model"), "--data", str(files / "train.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 12
    assert main(["eval", str(cli_run / "model"), "--data", str(files / "test.csv"), "--report", "r"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] is None and (tmp_path / "r" / "test-predictions.jsonl").is_file()


def test_python_api_takes_a_dataframe_and_weights_classes(base, files, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(files / "train.csv")
    frame = pd.concat([frame, frame[frame.sentiment == "positive"]])  # 12 positive, 6 negative
    summary = sesame.finetune(base, train=frame, task="classification",
                              columns={"text": "review", "label": "sentiment"}, class_weights="balanced",
                              run_dir=tmp_path / "df", train_config={"steps": 2, "batch_size": 4, "threads": 1},
                              progress=False, say=lambda _: None)
    record = json.loads((tmp_path / "df" / "model" / "finetune.json").read_text())
    assert record["files"] == {"train": "<DataFrame>"}
    n = summary["label_counts"]
    assert record["options"]["class_weights"] == pytest.approx(
        [(n["negative"] + n["positive"]) / (2 * n[c]) for c in ("negative", "positive")], rel=1e-5)


def test_class_weights_weigh_the_loss(base, vocab):
    from sesame.models import load_model
    from sesame.tasks import Classification, TextExample

    tok = load_tokenizer(vocab)
    examples = [TextExample(t, None, lab) for t, lab in (("great acting", "b"), ("awful plot", "a"),
                                                          ("i hated it", "a"))]
    losses = []
    for weights in ([], [1.0, 3.0]):
        task = Classification(tok, ["a", "b"], {"max_length": 16, "class_weights": weights})
        module = task.wrap(load_model(base)[0]).eval()
        batch = task.transform({"examples": examples})
        logits = module.logits(batch).float()
        ce = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
        losses.append((module(batch).loss.item(), ce.detach()))
    assert losses[0][0] == pytest.approx(losses[0][1].sum().item(), rel=1e-5)
    assert losses[1][0] == pytest.approx((losses[1][1] * torch.tensor([3.0, 1.0, 1.0])).sum().item(), rel=1e-5)
    with pytest.raises(ConfigError, match="class_weights has 1 values for 2 labels"):
        Classification(tok, ["a", "b"], {"class_weights": [1.0]}).wrap(load_model(base)[0])


def test_random_init_needs_no_model_directory(vocab, files, tmp_path, capsys):
    code = main(["finetune", "--init", "random", "--preset", "test-encoder", "--tokenizer", str(vocab), "--train",
                 str(files / "train.csv"), "--task", "classification", "--text-column", "review", "--label-column",
                 "sentiment", "--out", str(tmp_path / "rand"), "--dev-fraction", "0.25", *QUICK[:2]])
    out = capsys.readouterr().out
    assert code == 0 and "3 examples (25% of train, seed 0) held out as dev" in out
    record = json.loads((tmp_path / "rand" / "model" / "finetune.json").read_text())
    assert record["source_model"].startswith("random init of preset test-encoder")
    assert main(["finetune", "--init", "random", "--train", str(files / "train.csv"), "--task",
                 "classification"]) == 2


def test_unk_rate_is_warned_with_its_threshold(base, tmp_path, capsys):
    (tmp_path / "zh.csv").write_text("text,label\n" + "\n".join(f"这是中文{i},{i % 2}" for i in range(8)) + "\n")
    code = main(["finetune", str(base), "--train", str(tmp_path / "zh.csv"), "--task", "classification", "--out",
                 str(tmp_path / "zh"), "--set", "train.steps=1", "--set", "train.batch_size=4", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "warning: 100.0% of the tokens of zh train are [UNK] (threshold 5.0%)" in out
    main(["finetune", str(base), "--train", str(tmp_path / "zh.csv"), "--task", "classification", "--out",
          str(tmp_path / "zh2"), "--set", "train.steps=1", "--set", "train.batch_size=4", "--no-progress",
          "--unk-warn", "1.0"])
    assert "warning" not in capsys.readouterr().out


def test_tagging_from_a_conll_file_and_tag_splits_words_like_training(base, vocab, tmp_path, capsys):
    tok = load_tokenizer(vocab)
    assert [w for w, _, _ in split_words("New York.", tok)] == ["New", "York", "."]
    assert [w for w, _, _ in split_words("(Reuters)", tok)] == ["(", "Reuters", ")"]
    assert [w for w, _, _ in split_words("(Reuters)")] == ["(", "Reuters", ")"]
    sents = ["john B-PER\nwent O\nto O\nnew B-LOC\nyork I-LOC\n. O", "( O\nreuters B-ORG\n) O"] * 4
    (tmp_path / "ner.conll").write_text("-DOCSTART- O\n\n" + "\n\n".join(sents) + "\n")
    code = main(["finetune", str(base), "--train", str(tmp_path / "ner.conll"), "--task", "tagging", "--out",
                 str(tmp_path / "ner"), "--set", "train.steps=30", "--set", "train.batch_size=4", "--set",
                 "train.lr=5e-3", "--set", "train.warmup=0", "--dev-fraction", "0.25", "--no-progress"])
    assert code == 0
    capsys.readouterr()
    assert main(["tag", str(tmp_path / "ner" / "model"), "john went to New York."]) == 0
    ents = json.loads(capsys.readouterr().out)["entities"]
    assert all(e["text"] == "john went to New York."[e["start"]:e["end"]] for e in ents)
    assert all(not e["text"].endswith(".") for e in ents)  # the period is its own word


def test_one_long_input_policy(base, cli_run, tmp_path, capsys):
    assert cut(list(range(10)), 4, "head") == [0, 1, 2, 3] and cut(list(range(10)), 4, "tail") == [6, 7, 8, 9]
    assert cut(list(range(10)), 4, "head+tail") == [0, 7, 8, 9] and cut([1, 2], 4, "tail") == [1, 2]
    long = " ".join(["great acting"] * 40)
    classify = sesame.pipeline("text-classification", cli_run / "model")
    assert classify.max_length == 32 == json.loads((cli_run / "model" / "finetune.json").read_text())[
        "options"]["max_length"]  # the fine-tune's max_length (the default 128, fitted to the model's 32)
    embed = sesame.pipeline("feature-extraction", base)
    assert embed.max_length == 32  # the model's positions
    short = embed("great acting")
    windowed = sesame.pipeline("feature-extraction", base, truncation="window")
    assert torch.allclose(windowed("great acting"), short, atol=1e-6)  # one window: the plain vector
    assert embed(long).shape == short.shape and embed.truncated == 1  # cut, counted (it used to refuse)
    assert windowed(long).shape == short.shape and windowed.truncated == 1
    capsys.readouterr()
    assert main(["embed", str(base), long]) == 0
    assert "note: 1 of 1 input(s) were longer than 32 tokens: truncated (head)" in capsys.readouterr().err
    tail = sesame.pipeline("text-classification", cli_run / "model", truncation="tail")
    assert tail.runner.opts.truncation == "tail"
    with pytest.raises(ConfigError, match="keeps the head of a long input"):
        from sesame.tasks import Tagging

        Tagging(load_tokenizer(base), ["O"], {"truncation": "tail"})


def test_window_starts_cover_every_token():
    for n in range(1, 40):
        for room in range(1, 9):
            starts = window_starts(n, room)
            assert starts[0] == 0 and min(n, starts[-1] + room) == n and all(s + room <= max(n, room) for s in starts)
            assert set().union(*(range(s, min(s + room, n)) for s in starts)) == set(range(n))
            assert (len(starts) == 1) == (n <= room)  # one window exactly when the text fits
    assert window_starts(48, 30) == [0, 15, 18] and window_starts(30, 30) == [0]


def test_classify_reads_long_texts_in_windows(cli_run, capsys):
    model = cli_run / "model"
    head = sesame.pipeline("text-classification", model)
    windowed = sesame.pipeline("text-classification", model, truncation="window")
    short = ["great acting", "awful plot", ("great acting", "awful plot")]
    assert windowed(short, top_k=2) == head(short, top_k=2) and windowed.truncated == 0  # one window: exact
    long = " ".join(["great acting"] * 12 + ["awful plot"] * 12)  # 48 tokens, 30 per window
    rows, is_long = windowed.windows(long)
    ids = windowed.tokenizer.encode(long).ids
    assert is_long and len(ids) == 48 and [r["input_ids"][1:-1] for r in rows] == [ids[0:30], ids[15:45], ids[18:48]]
    probs = windowed.runner.predict_features(windowed.module, rows).softmax(-1)
    assert not torch.equal(probs[0], probs[2])  # the windows disagree, so the pooling matters
    got = {d["label"]: d["score"] for d in windowed(long, top_k=2)}
    assert got == {windowed.labels[i]: p for i, p in enumerate(probs.mean(0).tolist())}  # mean over all windows
    cut_head = {d["label"]: d["score"] for d in head(long, top_k=2)}
    assert cut_head == {head.labels[i]: p for i, p in enumerate(probs[0].tolist())}  # head = the first window only
    assert windowed.truncated == 1 and head.truncated == 1
    pair, _ = windowed.windows((long, "awful plot " * 20))  # the second text: cut to half the room (14 of 40)
    assert all(r["input_ids"].count(3) == 2 and len(r["input_ids"]) <= 32 for r in pair)
    assert [r["input_ids"][-15:-1] for r in pair] == [windowed.tokenizer.encode("awful plot " * 7).ids] * len(pair)
    capsys.readouterr()
    assert main(["classify", str(model), long, "--truncation", "window"]) == 0
    out = capsys.readouterr()
    best = max(got, key=got.get)
    assert out.out.split("\t")[:2] == [best, f"{got[best]:.3f}"]
    assert "1 of 1 input(s) were longer than 32 tokens: read in windows overlapping by half, probabilities " \
           "averaged" in out.err
    with pytest.raises(ConfigError, match="token-classification: truncation must be one of head, tail, "
                                          "head\\+tail, got 'window'"):
        sesame.pipeline("token-classification", model, truncation="window")


def test_inference_files_in_and_out(cli_run, files, tmp_path, capsys):
    model = str(cli_run / "model")
    assert main(["classify", model, "--input", str(files / "inputs.txt"), "--output", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert "1 empty input(s)" in capsys.readouterr().err
    assert main(["classify", model, "--input", str(files / "dev.csv"), "--text-column", "review", "--output",
                 str(tmp_path / "p.csv"), "--batch-size", "2"]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "text,label,score"


@pytest.mark.parametrize("argv, message", [
    (["fill-mask", "BASE", "the [MASK]", "--top-k", "0"], "--top-k must be at least 1"),
    (["fill-mask", "BASE", "the [MASK]", "--top-k", "100000"], "top_k must be between 1 and the vocabulary size"),
    (["classify", "BASE", "   "], "input 1 is empty"),
    (["embed", "BASE", ""], "input 1 is empty"),
    (["embed", "BASE", "x", "--device", "cuda"], "no CUDA device"),
    (["generate", "DEC", "the", "--strategy", "beam", "--num-beams", "0"], "--num-beams must be at least 1"),
    (["generate", "DEC", "the", "--max-new-tokens", "40"], "more than the model's 32 positions"),
])
def test_inference_option_checks(base, vocab, tmp_path, argv, message, capsys):
    if "DEC" in argv:
        tok = load_tokenizer(vocab)
        cfg = load_config("test-decoder").model.replace(vocab_size=tok.vocab_size, max_positions=32)
        save_model(build_model(cfg), tmp_path / "dec", extra={"tokenizer.json": tok.to_json()})
    if "--device" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = [str(base) if a == "BASE" else str(tmp_path / "dec") if a == "DEC" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_closed_pipe_ends_quietly(cli_run, tmp_path):
    inputs = tmp_path / "many.txt"
    inputs.write_text("great acting\n" * 400)
    proc = subprocess.run(f"{sys.executable} -m sesame.cli.main classify {cli_run / 'model'} --input {inputs} "
                          f"--batch-size 8 --no-progress | head -1", shell=True, capture_output=True, text=True)
    assert proc.stdout.startswith("positive") and "Traceback" not in proc.stderr and "Broken" not in proc.stderr


def test_long_training_inputs_are_counted(base, tmp_path):
    long = " ".join(["great acting"] * 30)
    (tmp_path / "long.csv").write_text("text,label\n" + "\n".join([f"{long},1", "awful plot,0"] * 4) + "\n")
    said = []
    sesame.finetune(base, train=tmp_path / "long.csv", task="classification", run_dir=tmp_path / "run",
                    train_config={"steps": 1, "batch_size": 4, "threads": 1}, options={"truncation": "head+tail"},
                    progress=False, say=said.append)
    assert any("of 7 training inputs are longer than task.max_length = 32 tokens: truncated (head+tail)" in s
               for s in said), said


@pytest.mark.parametrize("task, name, rows", [
    ("pair-classification", "pairs.tsv", "text_a\ttext_b\tlabel\n" + ("great acting\ti loved it\tsame\n"
                                                                       "awful plot\ti loved it\tdiff\n") * 4),
    ("multiple-choice", "mc.jsonl", "".join(json.dumps({"context": "john lives in paris", "question": "where ?",
                                                         "options": ["paris", "york", "reuters"], "label": "paris"})
                                            + "\n" for _ in range(8))),
    ("qa", "qa.jsonl", "".join(json.dumps({"question": "where ?", "context": "john lives in paris .",
                                           "answers": [{"text": "paris", "answer_start": 14}]}) + "\n"
                               for _ in range(8))),
])
def test_every_encoder_task_fine_tunes_from_a_file(base, tmp_path, task, name, rows, capsys):
    (tmp_path / name).write_text(rows)
    code = main(["finetune", str(base), "--train", str(tmp_path / name), "--task", task, "--out",
                 str(tmp_path / "run"), "--set", "train.steps=2", "--set", "train.batch_size=4", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r" dev \(\d+ examples\): \{", out), out
    assert main(["eval", str(tmp_path / "run" / "model"), "--data", str(tmp_path / name)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 8


def test_seq2seq_reads_source_and_target_columns(tmp_path):
    from sesame.tasks.files import read_file

    (tmp_path / "mt.csv").write_text("source,target\nhello,hallo\n,leer\nbye,tschüss\n")
    data = read_file(tmp_path / "mt.csv", {"task": "seq2seq"})
    assert [(ex.source, ex.target) for ex in data] == [("hello", "hallo"), ("bye", "tschüss")]
    assert data.counts == {"empty_pairs": 1}


MT = [("good morning my friend", "guten morgen mein freund"), ("good night my friend", "gute nacht mein freund"),
      ("thanks a lot my friend", "danke sehr mein freund"), ("hello my good friend", "hallo mein guter freund")]


def test_seq2seq_from_files_end_to_end(tmp_path, capsys):
    """A random t5-tiny learns four 4-word pairs from a TSV (named columns), reports BLEU
    and chrF on --dev (4-grams exist, so BLEU is not trivially 0), and translates."""
    words = sorted({w for pair in MT for text in pair for w in text.split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    (tmp_path / "pairs.tsv").write_text("en\tde\n" + "".join(f"{a}\t{b}\n" for a, b in MT * 4))
    (tmp_path / "dev.tsv").write_text("en\tde\n" + "".join(f"{a}\t{b}\n" for a, b in MT))
    (tmp_path / "in.txt").write_text("good night my friend\nhello my good friend\n")
    code = main(["finetune", "--init", "random", "--preset", "t5-tiny", "--tokenizer", str(tmp_path / "vocab.txt"),
                 "--train", str(tmp_path / "pairs.tsv"), "--dev", str(tmp_path / "dev.tsv"), "--task", "seq2seq",
                 "--source-column", "en", "--target-column", "de", "--out", str(tmp_path / "mt"), *QUICK,
                 "--set", "train.steps=25"])
    out = capsys.readouterr().out
    assert code == 0, out
    scores = json.loads(re.search(r"dev \(4 examples\): (\{.*\})", out).group(1))
    assert scores == {"bleu": pytest.approx(1.0), "chrf": pytest.approx(1.0)}, out
    record = json.loads((tmp_path / "mt" / "model" / "finetune.json").read_text())
    assert record["task"] == "seq2seq"
    assert main(["translate", str(tmp_path / "mt" / "model"), "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["translation"] for r in rows] == ["gute nacht mein freund", "hallo mein guter freund"], rows


def test_then_takes_a_file_stage(base, files, tmp_path, capsys):
    """Two-stage from files: classification on a CSV, then tagging on a column file whose
    tags sit in column 2 (a stage given as one line of file options)."""
    sents = ["john x B-PER\nwent x O\nto x O\nparis x B-LOC", "( x O\nreuters x B-ORG\n) x O"] * 4
    (tmp_path / "ner.conll").write_text("\n\n".join(sents) + "\n")
    code = main(["finetune", str(base), "--train", str(files / "train.csv"), "--task", "classification",
                 "--text-column", "review", "--label-column", "sentiment", "--then",
                 f"train={tmp_path / 'ner.conll'},task=tagging,tokens-column=0,tags-column=2,dev-fraction=0.25",
                 "--out", str(tmp_path / "two"), "--set", "train.steps=2", "--set", "train.batch_size=4",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"stage1 train dev \(\d+ examples\): \{\"accuracy\"", out), out
    assert re.search(r"stage2 ner dev \(2 examples\): \{.*\"f1\"", out), out
    record = json.loads((tmp_path / "two" / "stage2" / "model" / "finetune.json").read_text())
    assert record["task"] == "tagging" and {"O", "B-LOC", "B-ORG", "B-PER"} <= set(record["labels"])
    assert record["source_model"] == str(tmp_path / "two" / "stage1" / "model")
    with pytest.raises(ConfigError, match="no key 'tag-column'.*did you mean `tags-column`"):
        from sesame.cli.finetune import stage_arg
        stage_arg("train=a.conll,task=tagging,tag-column=2")
    with pytest.raises(ConfigError, match="needs train=FILE and task=TASK"):
        stage_arg("train=a.conll")
    quoted = stage_arg('train="my, ""best"" data.csv",task=classification,delimiter=",",text-column="a,b"')
    assert quoted == {"train": 'my, "best" data.csv', "task": "classification", "data": {"delimiter": ","},
                      "columns": {"text": "a,b"}}
    with pytest.raises(ConfigError, match="unclosed double quote"):
        stage_arg('train="a, b.csv,task=tagging')


def test_also_takes_file_stages(base, files, tmp_path, capsys):
    """Multi-task from files: the CSV (--train) and a column file (--also), one shared encoder,
    each task saved with its head and its recorded files."""
    ner = tmp_path / "ner, v2.conll"  # a comma in the path: the stage quotes it
    ner.write_text("\n\n".join(["john x B-PER\nwent x O\nto x O\nparis x B-LOC"] * 8) + "\n")
    code = main(["finetune", str(base), "--train", str(files / "train.csv"), "--task", "classification",
                 "--text-column", "review", "--label-column", "sentiment", "--also",
                 f'train="{ner}",task=tagging,tags-column=2', "--out", str(tmp_path / "mtl"),
                 "--set", "train.steps=2", "--set", "train.batch_size=4", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"^train-classification dev \(\d+ examples\): \{\"accuracy\"", out, re.M), out
    assert re.search(r"^ner, v2 dev \(1 examples\): \{.*\"f1\"", out, re.M), out
    for name, task in (("train-classification", "classification"), ("ner, v2", "tagging")):
        record = json.loads((tmp_path / "mtl" / "models" / name / "finetune.json").read_text())
        assert record["task"] == task and record["multitask"] == ["train-classification", "ner, v2"]
        assert "files" in record
