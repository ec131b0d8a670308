"""Downstream tasks: alignment, QA windows, wrapping pre-trained models, and a tiny
end-to-end run per task (finite loss; a few AdamW steps on 8 examples drive it down)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sesame.config import ModelConfig
from sesame.config.registry import get
from sesame.errors import ConfigError, DataError
from sesame.models import build_model, load_model, save_model
from sesame.tasks import (Answer, ChoiceExample, Classification, MultipleChoice, PairExample, QAExample,
                          QuestionAnswering, Seq2Seq, TagExample, Tagging, TextExample)
from sesame.tasks.qa import max_context, windows


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight parallel test workers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tokenizer(path: Path):
    if not path.is_file():
        pytest.skip(f"the BERT vocabulary {path} is absent")
    from sesame.tokenize import load_tokenizer

    return load_tokenizer(path)


@pytest.fixture(scope="module")
def en_tok(shared_data):
    return _tokenizer(shared_data / "vocab" / "google_uncased_en_vocab.txt")


@pytest.fixture(scope="module")
def zh_tok(shared_data):
    return _tokenizer(shared_data / "vocab" / "google_zh_vocab.txt")


def tiny(tok, arch="encoder", heads=("mlm",)) -> ModelConfig:
    return ModelConfig(arch=arch, vocab_size=tok.vocab_size, hidden=32, layers=2, num_heads=4, intermediate=64,
                       max_positions=128, heads=list(heads), dropout=0.0, attention_dropout=0.0)


def train(module, batch, steps=30, lr=3e-3):
    """Loss per target before and after ``steps`` AdamW steps on one batch."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(module.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = module(batch)
        loss = out.loss / out.count
        assert torch.isfinite(loss), "loss must be finite"
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        out = module(batch)
    return first, (out.loss / out.count).item()


# ---------------------------------------------------------------- classification


def test_classification_end_to_end(en_tok, tmp_path):
    texts = ["a great film", "awful and boring", "i loved it", "worst movie ever",
             "brilliant acting", "a waste of time", "wonderful story", "terrible plot"]
    examples = [TextExample(t, None, str(i % 2 ^ 1), f"s{i}") for i, t in enumerate(texts)]
    task = Classification(en_tok, ["0", "1"], {"max_length": 32})
    module = task.build(tiny(en_tok, heads=["mlm", "nsp"]))
    assert list(module.model.heads) == ["pooler", "classify"]  # pooler kept in front of the classifier
    batch = task.transform({"examples": examples}, np.random.default_rng(0))
    assert batch["input_ids"][:, 0].eq(en_tok.cls_id).all() and batch["labels"].tolist() == [1, 0] * 4
    assert task.count(batch) == 8
    before, after = train(module, batch)
    assert after < before / 4
    result = task.evaluate(module, examples, batch_size=3, report_dir=tmp_path, name="toy")
    assert result["metrics"]["accuracy"] == 1.0 and result["metrics"]["mcc"] == pytest.approx(1.0)
    assert sum(map(sum, result["confusion"])) == 8
    assert Path(result["files"]["confusion"]).stat().st_size > 1000
    assert "| accuracy | macro_f1 | mcc |" in Path(result["files"]["markdown"]).read_text()


def test_classification_pairs_features_and_unknown_labels(en_tok):
    task = Classification(en_tok, ["no", "yes"], {"max_length": 12})
    ex = TextExample("the first sentence is rather long indeed", "and a second one", "yes")
    via_examples = task.transform({"examples": [ex]})
    via_features = task.transform({"features": task.features([ex])})
    assert all(torch.equal(via_examples[k], via_features[k]) for k in via_examples)
    ids, types = via_examples["input_ids"][0].tolist(), via_examples["token_type_ids"][0].tolist()
    assert len(ids) == 12 and ids.count(en_tok.sep_id) == 2 and types[-1] == 1  # longest-first truncation
    with pytest.raises(DataError, match="'maybe' is not one of the task's labels"):
        task.features([TextExample("x", label="maybe")])
    with pytest.raises(ConfigError, match="label list"):
        Classification(en_tok, [])


def test_wrap_swaps_pretraining_heads_and_round_trips(en_tok, tmp_path):
    pre = build_model(tiny(en_tok, heads=["mlm", "nsp"]))
    pooler = pre.heads["pooler"].dense.weight.clone()
    module = Tagging(en_tok, ["O", "B-PER", "I-PER"]).wrap(pre)
    assert list(module.model.heads) == ["tag"] and module.model.config.heads == ["tag"]
    assert module.model.config.num_labels == 3
    cls = Classification(en_tok, ["a", "b", "c"]).wrap(build_model(tiny(en_tok, heads=["mlm", "nsp"])))
    assert list(cls.model.heads) == ["pooler", "classify"]
    assert not torch.equal(cls.model.heads["pooler"].dense.weight, pooler)  # its own pooler, kept
    save_model(module.model, tmp_path / "ner")
    loaded, _ = load_model(tmp_path / "ner")
    again = Tagging(en_tok, ["O", "B-PER", "I-PER"]).wrap(loaded)  # a fine-tuned head is kept as it is
    assert torch.equal(again.model.heads["tag"].classifier.weight, module.model.heads["tag"].classifier.weight)
    with pytest.raises(ConfigError, match="model.arch"):  # encoders take the prefix-LM route; decoders not
        Seq2Seq(en_tok).wrap(build_model(tiny(en_tok, arch="decoder", heads=["lm"])))


def test_tasks_are_registered():
    for name, cls in [("classification", Classification), ("tagging", Tagging), ("qa", QuestionAnswering),
                      ("multiple_choice", MultipleChoice), ("seq2seq", Seq2Seq)]:
        assert get("task", name) is cls


# ---------------------------------------------------------------- tagging


def test_tagging_labels_the_first_sub_token(en_tok):
    task = Tagging(en_tok, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    ex = TagExample(["Johanson", "lives", "in", "Washington", "!"], ["B-PER", "O", "O", "B-LOC", "O"])
    (feat,) = task.features([ex])
    tokens = en_tok.convert_ids_to_tokens(feat["input_ids"])
    assert tokens == ["[CLS]", "johan", "##son", "lives", "in", "washington", "!", "[SEP]"]
    assert feat["labels"] == [-100, 3, -100, 0, 0, 1, 0, -100]  # '##son' and the specials are -100
    assert feat["word_token"] == [1, 3, 4, 5, 6]


def test_tagging_truncation_and_tokenless_words_are_counted(en_tok):
    task = Tagging(en_tok, ["O", "B-X", "I-X"], {"max_length": 5})
    ex = TagExample(["a", "\u200b", "b", "c", "d", "e"], ["O", "O", "B-X", "I-X", "O", "O"])
    (feat,) = task.features([ex])
    assert feat["words_without_tokens"] == 1 and feat["words_truncated"] == 2
    assert feat["word_token"] == [1, -1, 2, 3, -1, -1]


def test_tagging_end_to_end_on_chinese_characters(zh_tok):
    names = ["张三", "李四", "王五", "赵六"]
    places = ["北京", "上海", "广州", "深圳"]
    examples = []
    for i in range(8):
        p, c = names[i % 4], places[(i + 1) % 4]
        words = list(f"{p}去{c}了")
        examples.append(TagExample(words, ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], str(i)))
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    task = Tagging(zh_tok, labels, {"max_length": 16})
    module = task.build(tiny(zh_tok))
    batch = task.transform({"examples": examples})
    assert task.count(batch) == 48  # one label per character
    before, after = train(module, batch)
    assert after < before / 4
    result = task.evaluate(module, examples)
    assert result["metrics"]["f1"] == 1.0 and result["counts"]["found_gold"] == 16


# ---------------------------------------------------------------- QA


def test_windows_cover_the_context_with_stride():
    assert windows(25, 10, 8) == [(0, 10), (8, 10), (16, 9)]
    assert windows(5, 10, 8) == [(0, 5)]
    spans = windows(20, 10, 4)  # (0,10) (4,10) (8,10) (12,8)
    # token 9: left/right context 9/0, 5/4, 1/8 -> the second window has the most
    assert [max_context(spans, k, 9) for k in range(4)] == [False, True, False, False]


QA_CONTEXT = ("the quick brown fox jumps over the lazy dog . " * 5
              + "the treasure is buried under the old oak tree near the river . "
              + "the lazy dog sleeps all day long . " * 3)


def test_qa_answer_in_a_later_window_maps_back_exactly(en_tok):
    answer = "the old oak tree"
    start = QA_CONTEXT.index(answer)
    ex = QAExample("q1", "where is the treasure buried ?", QA_CONTEXT, [Answer(answer, start)])
    task = QuestionAnswering(en_tok, options={"max_length": 32, "doc_stride": 8, "max_query_length": 16})
    feats = task.features([ex])
    assert len(feats) > 3 and all(len(f["input_ids"]) <= 32 for f in feats)
    assert feats[0]["start_position"] == 0 and feats[0]["end_position"] == 0  # not in the first window: [CLS]
    hits = [f for f in feats if f["start_position"] > 0]
    assert hits and all(f["window"] > 0 for f in hits)
    for f in hits:
        s, e = f["start_position"], f["end_position"]
        assert QA_CONTEXT[f["offsets"][s][0]:f["offsets"][e][1]] == answer
    # best-span search over all windows finds it from the logits of the window that holds it
    starts = [torch.zeros(len(f["input_ids"])) for f in feats]
    ends = [torch.zeros(len(f["input_ids"])) for f in feats]
    best = max(hits, key=lambda f: f["max_context"][f["start_position"]])
    k = feats.index(best)
    starts[k][best["start_position"]] = 5.0
    ends[k][best["end_position"]] = 5.0
    assert task.best_spans([ex], feats, starts, ends) == {"q1": answer}


def test_qa_span_search_respects_order_and_length(en_tok):
    ctx = "alpha beta gamma delta epsilon"
    ex = QAExample("q", "which ?", ctx, [])
    task = QuestionAnswering(en_tok, options={"max_length": 32, "max_answer_length": 2})
    (feat,) = task.features([ex])
    first = feat["offsets"].index([0, 5])  # 'alpha'
    s, e = torch.full((len(feat["input_ids"]),), -10.0), torch.full((len(feat["input_ids"]),), -10.0)
    s[first + 4], e[first + 3] = 9.0, 9.0  # end before start: invalid
    s[first], e[first + 3] = 5.0, 5.0  # 4 tokens long: too long for max_answer_length = 2
    s[first + 1], e[first + 2] = 4.0, 4.0  # the best valid span
    assert task.best_spans([ex], [feat], [s], [e]) == {"q": "beta gamma"}


def test_qa_end_to_end(en_tok):
    facts = [("paris", "france"), ("rome", "italy"), ("berlin", "germany"), ("madrid", "spain"),
             ("lisbon", "portugal"), ("vienna", "austria"), ("athens", "greece"), ("oslo", "norway")]
    examples = []
    for i, (city, country) in enumerate(facts):
        ctx = f"the capital of {country} is {city} . it is a big city ."
        examples.append(QAExample(str(i), f"what is the capital of {country} ?", ctx,
                                  [Answer(city, ctx.index(f"is {city}") + 3)]))
    task = QuestionAnswering(en_tok, options={"max_length": 48, "metric": "squad"})
    module = task.build(tiny(en_tok, heads=["mlm", "nsp"]))
    assert list(module.model.heads) == ["span"]
    batch = task.transform({"examples": examples})
    assert task.count(batch) == 8 and batch["start_positions"].gt(0).all()
    before, after = train(module, batch, steps=40)
    assert after < before / 4
    result = task.evaluate(module, examples, batch_size=4)
    assert result["metrics"]["exact_match"] == 1.0 and result["metrics"]["f1"] == 1.0


# ---------------------------------------------------------------- multiple choice


def test_multiple_choice_end_to_end(en_tok):
    colours = ["red", "blue", "green", "yellow"]
    examples = []
    for i in range(8):
        options = colours[: 2 + i % 3]  # 2, 3 or 4 options
        label = i % len(options)
        examples.append(ChoiceExample(f"the ball is {options[label]} .", options, "what colour is the ball ?",
                                      label, id=str(i)))
    task = MultipleChoice(en_tok, options={"max_length": 24})
    module = task.build(tiny(en_tok, heads=["mlm", "nsp"]))
    assert list(module.model.heads) == ["pooler", "choice"]
    batch = task.transform({"examples": examples})
    assert batch["input_ids"].shape[:2] == (8, 4) and batch["option_mask"].sum().item() == 2 + 3 + 4 + 2 + 3 + 4 + 2 + 3
    before, after = train(module, batch, steps=50)
    assert after < before / 2  # the bounded (tanh pooler) scores learn the margin slowly
    assert task.evaluate(module, examples, batch_size=3)["metrics"]["accuracy"] == 1.0


def test_multiple_choice_fills_the_blank_and_keeps_it_in_the_window(zh_tok):
    context = "很长的前文" * 40 + "他总是#idiom#，从不放弃。" + "很长的后文" * 40
    ex = ChoiceExample(context, ["坚持不懈", "半途而废"], "", 0, "#idiom#")
    task = MultipleChoice(zh_tok, options={"max_length": 32})
    (feat,) = task.features([ex])
    for ids, option in zip(feat["input_ids"], ex.options):
        assert len(ids) <= 32
        assert option in zh_tok.decode(ids).replace(" ", "")


# ---------------------------------------------------------------- seq2seq


def test_seq2seq_shifts_targets(en_tok):
    task = Seq2Seq(en_tok, options={"max_length": 16, "max_target_length": 8})
    (feat,) = task.features([PairExample("hello world", "good morning")])
    tgt = en_tok.encode("good morning").ids
    assert feat["decoder_input_ids"] == [en_tok.cls_id, *tgt]  # [start] + target
    assert feat["labels"] == [*tgt, en_tok.sep_id]  # target + [end]: the inputs shifted left
    assert feat["input_ids"][-1] == en_tok.sep_id


def test_seq2seq_end_to_end_translation_into_chinese(zh_tok):
    pairs = [("i love you", "我爱你"), ("good morning", "早上好"), ("thank you", "谢谢你"), ("see you", "再见"),
             ("i am hungry", "我饿了"), ("it is cold", "天冷了"), ("come here", "过来"), ("no problem", "没问题")]
    examples = [PairExample(a, b, str(i)) for i, (a, b) in enumerate(pairs)]
    task = Seq2Seq(zh_tok, options={"max_length": 16, "max_target_length": 8, "target_language": "zh",
                                    "metrics": ["bleu", "rouge"]})
    module = task.build(tiny(zh_tok, arch="encoder-decoder", heads=["lm"]))
    batch = task.transform({"examples": examples})
    assert task.count(batch) == sum(len(b) + 1 for _, b in pairs)  # characters + [end]
    before, after = train(module, batch, steps=60, lr=5e-3)
    assert after < before / 4
    pytest.importorskip("sacrebleu")
    pytest.importorskip("rouge_score")
    result = task.evaluate(module, examples, batch_size=4)
    assert set(result["metrics"]) == {"bleu", "rouge1", "rouge2", "rougeL"}
    assert result["predictions"][0]["hypothesis"] == "我爱你"  # learned; CJK spaces joined
    assert result["metrics"]["rouge1"] > 0.9
