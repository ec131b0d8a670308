"""ELMo: the biLSTM directions never see what they predict, the bilm loss and its sampled
softmax equal hand computations, the scalar mix trains under a frozen body, a pre-training
run resumes exactly, embed gives context-dependent vectors, and the static baseline reads
the same task model."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sesame.config import load_config
from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.models import build_model
from sesame.objectives import Vocab
from sesame.objectives.bilm import BiLM, sampled_loss

torch.set_num_threads(1)


def tiny(**kw) -> ModelConfig:
    base = dict(family="elmo", arch="bilm", position="none", type_vocab_size=0, vocab_size=50, hidden=16,
                intermediate=12, layers=2, char_dim=4, char_filters=[[1, 4], [2, 4], [3, 8]], highway_layers=1,
                max_characters=12, dropout=0.0, heads=["bilm"])
    return ModelConfig.from_dict({**base, **kw})


def words(n=50):
    return tuple(f"w{i}" for i in range(n))


@pytest.mark.parametrize("encoder", ["char-cnn", "embedding"])
def test_directions_never_see_what_they_predict(encoder):
    torch.manual_seed(0)
    model = build_model(tiny(token_encoder=encoder)).eval()
    if encoder == "char-cnn":
        model.body.embed.set_vocabulary(words())
    ids = torch.randint(0, 50, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0  # row 1 is right-padded
    t = 5
    _, base = model.body.directions(ids, mask)
    future, past = ids.clone(), ids.clone()
    future[:, t + 1:] = (future[:, t + 1:] + 7) % 50  # the tokens the forward states at <= t predict, and beyond
    past[:, :t] = (past[:, :t] + 7) % 50  # the tokens the backward states at >= t predict, and before
    _, fut = model.body.directions(future, mask)
    _, pst = model.body.directions(past, mask)
    for (f0, b0), (f1, _b1), (_f2, b2) in zip(base, fut, pst):
        assert torch.equal(f0[:, : t + 1], f1[:, : t + 1])  # forward at <= t: blind to the future
        assert not torch.allclose(f0[:, t + 1:], f1[:, t + 1:])  # ... but it does read the past
        assert torch.equal(b0[0, t:], b2[0, t:]) and torch.equal(b0[1, t:7], b2[1, t:7])  # backward at >= t:
        # blind to the past (the states at padding positions are not used)
        assert not torch.allclose(b0[:, :t], b2[:, :t])
    padded = ids.clone()
    padded[1, 7:] = 3  # padding never enters either direction of the real tokens
    _, pad = model.body.directions(padded, mask)
    assert all(torch.equal(a[1, :7], c[1, :7]) and torch.equal(b[1, :7], d[1, :7])
               for (a, b), (c, d) in zip(base, pad))


def test_bilm_loss_equals_a_hand_computation_and_sampled_softmax_its_exact_limit():
    torch.manual_seed(1)
    cfg = tiny(token_encoder="embedding", vocab_size=11)
    objective = BiLM(Vocab(11))
    module = objective.build(cfg).eval()
    ids = np.array([[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    docs = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    batch = objective.transform({"input_ids": ids, "attention_mask": mask, "doc_ids": docs}, np.random.default_rng(0))
    out = module(batch)
    body, head = module.model.body, module.model.heads["bilm"]
    _, layers = body.directions(torch.as_tensor(ids), torch.as_tensor(mask))
    fwd, bwd = (x.double() for x in layers[-1])
    w, b = head.decoder.weight.double(), head.decoder.bias.double()
    total, n = 0.0, 0
    for r in range(2):
        for t in range(6):
            if not mask[r, t]:
                continue
            for state, k in ((fwd, t + 1), (bwd, t - 1)):  # next token forward, previous token backward
                if 0 <= k < 6 and mask[r, k] and docs[r, k] == docs[r, t]:
                    z = w @ state[r, t] + b
                    total += float(torch.log(torch.exp(z).sum()) - z[ids[r, k]])
                    n += 1
    assert n == 14 and out.count == 14 and objective.count(batch) == 14
    assert math.isclose(float(out.loss), total, rel_tol=1e-5)
    # sampled softmax with every class drawn (and uniform inclusion) is the full softmax
    keep = batch["labels"] != -100
    states, targets = layers[-1][0][keep], batch["labels"][keep]
    full = F.cross_entropy(head.logits(states).float(), targets, reduction="sum")
    for k in (11, 50):
        assert torch.allclose(sampled_loss(head, states, targets, k), full, rtol=1e-6)
    fewer = sampled_loss(head, states, targets, 3, torch.Generator().manual_seed(0))
    assert float(fewer) < float(full)  # fewer competitors: a smaller loss (a biased estimate)


def test_transformer_settings_and_wrong_objectives_fail_at_build_time():
    with pytest.raises(ConfigError, match="model.attention"):
        tiny(attention="performer")
    with pytest.raises(ConfigError, match="model.adapter_size"):
        tiny(adapter_size=8)
    with pytest.raises(ConfigError, match="positions"):
        tiny(position="learned")
    with pytest.raises(ConfigError, match="arch = 'bilm'"):
        BiLM(Vocab(50)).build(load_config("test-decoder").model)
    with pytest.raises(ConfigError, match="token strings"):
        BiLM(Vocab(50)).build(tiny())
    assert load_config("elmo").model.char_filters[-1] == [7, 1024]  # the published shape validates


@pytest.fixture(scope="module")
def elmo_run(shared_data, tmp_path_factory):
    """A tiny ELMo pre-trained from the CLI path on real text (a slice of Tiny Shakespeare)."""
    from sesame.pretrain import pretrain

    root = tmp_path_factory.mktemp("elmo")
    text = (shared_data / "corpora" / "en" / "tinyshakespeare" / "input.txt").read_text()[:30_000]
    (root / "shakespeare.txt").write_text(text)
    cfg = load_config("elmo-tiny", [
        f"data.inputs=[{str(root / 'shakespeare.txt')!r}]", "data.seq_len=24", "tokenizer.kind='wordpiece'",
        "tokenizer.vocab_size=300", "model.hidden=16", "model.intermediate=16", "model.char_dim=4",
        "model.char_filters=[[1, 4], [2, 4], [3, 8]]", "model.max_characters=16", "train.steps=8",
        "train.batch_size=4", "train.save_every=4", "train.keep=4", "train.log_every=1", "train.lr=0.01",
        "train.warmup=1", "train.threads=1", "train.eval_every=4", "train.eval_batches=2",
        "objective.options.softmax='sampled'", "objective.options.samples=40"])
    summary = pretrain(cfg, root / "run", progress=False, say=lambda s: None)
    return cfg, root, summary


def test_elmo_pretrain_resumes_exactly(elmo_run):
    from sesame.pretrain import pretrain

    cfg, root, summary = elmo_run
    assert summary["steps"] == 8 and summary["loss"] < math.log(300)
    again = root / "again"
    shutil.copytree(root / "run", again)
    shutil.rmtree(again / "model")
    shutil.rmtree(again / "checkpoints" / "step-000008")
    resumed = pretrain(cfg, again, resume=True, progress=False, say=lambda s: None)
    assert resumed["start_step"] == 4 and resumed["loss"] == summary["loss"]
    from sesame.evaluate import evaluate_lm

    (root / "held.txt").write_text((root / "shakespeare.txt").read_text()[:3000])
    scores = evaluate_lm(root / "run" / "model", [str(root / "held.txt")], seq_len=24, batch_size=8)
    assert scores["objective"] == "bilm" and scores["perplexity"] < 300 and 0 < scores["accuracy"] < 1
    a = load_file(str(root / "run" / "model" / "model.safetensors"))
    b = load_file(str(again / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_embed_gives_the_same_word_different_vectors_in_different_sentences(elmo_run):
    from sesame.pipelines import pipeline

    _, root, _ = elmo_run
    embed = pipeline("feature-extraction", root / "run" / "model")
    rows = embed.token_vectors(["the king is dead", "long live the king", "the king"])
    kings = [vec for row in rows for token, vec in row if token == "the"]  # one token in this small vocabulary
    assert len(kings) == 3 and kings[0].shape == (16,)
    assert not torch.allclose(kings[0], kings[1]) and not torch.allclose(kings[1], kings[2])
    again = embed.token_vectors(["the king is dead"])[0]
    assert torch.allclose(again[0][1], kings[0], atol=1e-5)  # the same sentence alone: the same vector


def test_static_vectors_feed_the_same_task_model(tmp_path):
    from sesame.pipelines import load_any
    from sesame.static.vectors import Vectors
    from sesame.tasks.tagging import Tagging
    from sesame.tasks.examples import TagExample

    vec = Vectors(["the", "king", "is", "dead", "."], np.arange(20, dtype=np.float32).reshape(5, 4))
    vec.write_binary(tmp_path / "v.bin")
    model, tok, _ = load_any(tmp_path / "v.bin")
    assert tok.encode("The king is DEAD.").ids == [4, 5, 6, 7, 8]
    assert tok.encode("a king").ids == [tok.unk_id, 5]
    assert torch.equal(model.body.embed.tokens.weight[5], torch.arange(4, 8, dtype=torch.float32))
    from sesame import transfer

    model, _ = transfer.prepare_model(model, transfer.as_strategy({"kind": "frozen", "task_encoder": "bilstm",
                                                                   "task_hidden": 3}))
    task = Tagging(tok, ["O", "B-PER"])
    module = task.wrap(model)
    transfer.apply(module, "frozen")
    batch = task.transform({"examples": [TagExample(["the", "king", "is", "dead"], ["O", "B-PER", "O", "O"], "1")]})
    out = module(batch)
    assert out.count == 4 and module.model.heads["tag"].classifier.in_features == 6
    from sesame.models import save_model

    save_model(module.model, tmp_path / "tagger", extra={"tokenizer.json": tok.to_json()})  # a model dir like any
    again, tok2, _ = load_any(tmp_path / "tagger")
    module.eval()
    assert torch.equal(task.wrap(again).eval().logits(batch), module.logits(batch))
    with pytest.raises(ConfigError, match="scalar_mix.*static"):
        transfer.prepare_model(model, transfer.as_strategy({"kind": "frozen", "scalar_mix": True}))


def test_scalar_mix_trains_and_the_frozen_biLM_does_not(elmo_run):
    from sesame import transfer
    from sesame.tasks.classification import Classification
    from sesame.tasks.examples import TextExample
    from sesame.pipelines import load_any

    model, tok, _ = load_any(elmo_run[1] / "run" / "model")  # the pre-trained tiny ELMo
    torch.manual_seed(2)
    strategy = transfer.as_strategy({"kind": "frozen", "scalar_mix": True, "scalar_mix_norm": True,
                                     "task_encoder": "bilstm", "task_hidden": 8, "task_embedding": 4})
    model, _ = transfer.prepare_model(model, strategy)
    task = Classification(tok, ["negative", "positive"])
    module = task.wrap(model)
    transfer.apply(module, strategy)
    body = {k: v.clone() for k, v in module.model.body.state_dict().items()}
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=0.05)
    texts = [("a gripping , funny film", "positive"), ("dull and lifeless", "negative"),
             ("the best movie of the year", "positive"), ("a tedious mess", "negative")]
    batch = task.transform({"examples": [TextExample(t, None, y, str(i)) for i, (t, y) in enumerate(texts)]})
    before = module.model.mix.scalars.detach().clone()
    module.train()
    for _ in range(3):
        opt.zero_grad()
        out = module(batch)
        out.loss.backward()
        assert module.model.mix.scalars.grad.abs().sum() > 0
        opt.step()
    assert not torch.allclose(module.model.mix.scalars, before)
    assert all(torch.equal(v, module.model.body.state_dict()[k]) for k, v in body.items())
    assert module.model.mix.scalars.numel() == 3 and module.model.mix.norm  # characters + two LSTM layers


def test_the_biLM_learns_from_its_characters():
    """Sequences where each token follows from the previous one: the char-CNN biLM learns
    them (so a run that stays at the unigram plateau is not blind to its characters)."""
    torch.manual_seed(3)
    objective = BiLM(Vocab(40, tokens=tuple(f"w{i}" for i in range(40))))
    module = objective.build(load_config("elmo-tiny").model.replace(vocab_size=40, hidden=32, intermediate=16,
                                                                   dropout=0.0))
    opt = torch.optim.Adam(module.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    for _ in range(60):
        ids = (rng.integers(0, 40, (8, 1)) + 3 * np.arange(12)) % 40
        out = module(objective.transform({"input_ids": ids}, rng))
        (out.loss / out.count).backward()
        opt.step()
        opt.zero_grad()
    module.eval()
    out = module(objective.transform({"input_ids": (np.arange(8)[:, None] + 3 * np.arange(12)) % 40}, rng))
    correct, count = out.metrics["accuracy"]
    assert correct / count > 0.4 and float(out.loss) / count < 2.5  # a unigram model: 1/40 and ln(40) = 3.7


def test_char_cnn_token_vectors_stay_distinct_and_bounded_under_adam(shared_data):
    """100 Adam steps at lr 1e-2 on the bilm loss over real text (Tiny Shakespeare, a
    600-WordPiece vocabulary): the character CNN's output stays bounded and different
    tokens keep different vectors. Without the LayerNorm after the projection the output
    norms reached ~900 and every token's vector had cosine 0.99999 with every other's."""
    from sesame.tokenize import train_tokenizer

    text = (shared_data / "corpora" / "en" / "tinyshakespeare" / "input.txt").read_text()[:60_000]
    lines = [line for line in text.splitlines() if line.strip()]
    tok = train_tokenizer(texts=lines, kind="wordpiece", vocab_size=600, min_frequency=1)
    ids = np.concatenate([tok.encode(line).ids for line in lines])
    windows = ids[: len(ids) // 32 * 32].reshape(-1, 32)
    torch.manual_seed(0)
    objective = BiLM(Vocab.from_tokenizer(tok))
    cfg = load_config("elmo-tiny").model.replace(vocab_size=tok.vocab_size, hidden=64, intermediate=32, dropout=0.0)
    module = objective.build(cfg)
    cnn = module.model.body.embed
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(100):
        out = module(objective.transform({"input_ids": windows[rng.integers(0, len(windows), 8)]}, rng))
        (out.loss / out.count).backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        seen = torch.as_tensor(np.unique(windows[:64]))  # the distinct tokens of 64 windows
        vecs = cnn.encode_tokens(cnn.chars[seen])
        unit = F.normalize(vecs, dim=-1)
        k = len(seen)
        mean_cos = float(((unit @ unit.T).sum() - k) / (k * k - k))  # over pairs of different tokens
    bound = 4 * (cfg.hidden // 2) ** 0.5  # a unit-gain LayerNorm output has norm sqrt(width) = 5.7 here
    assert k > 200 and float(vecs.norm(dim=-1).max()) < bound
    assert mean_cos < 0.9, f"the tokens' vectors collapsed: mean cosine {mean_cos:.4f}"


def test_softmax_bias_starts_at_the_training_unigram():
    """``fit_prior`` counts the first training batches and ``build`` puts their add-one
    smoothed log frequencies in the softmax bias, so the untrained biLM already scores
    the unigram's cross-entropy (a zero bias scores ln V; Adam at the recipe's lr could
    not move the bias that far and the LSTM states learned the unigram instead)."""
    from sesame.train.source import ArraySource

    rng = np.random.default_rng(0)
    windows = rng.zipf(1.5, (64, 12)) % 40  # a skewed unigram over 40 tokens
    source = ArraySource(windows, 8, seed=0)
    source.epoch = 3
    cfg = tiny(token_encoder="embedding", vocab_size=48)  # 8 rows past the tokenizer's 40
    objective = BiLM(Vocab(40), {"prior_batches": 4})
    objective.fit_prior(source)
    assert source.epoch == 3  # the counting leaves the source's epoch as it was
    counts = np.ones(40)
    for step in range(4):
        batch = objective.transform(source.batch(step, 0, 1, 0, 1), np.random.default_rng(step))
        for labels in (batch["labels"], batch["labels_back"]):
            counts += np.bincount(labels[labels != -100].numpy(), minlength=40)
    log_p = np.log(counts / counts.sum())
    module = objective.build(cfg).eval()
    bias = module.model.heads["bilm"].decoder.bias.detach().double().numpy()
    assert np.allclose(bias[:40], log_p, atol=1e-5) and np.allclose(bias[40:], log_p.min())
    batch = objective.transform({"input_ids": windows[:16]}, rng)
    out = module(batch)
    ys = np.concatenate([batch[k][batch[k] != -100].numpy() for k in ("labels", "labels_back")])
    assert abs(float(out.loss) / out.count - float(-log_p[ys].mean())) < 0.05
    flat = BiLM(Vocab(40), {"prior": "zero"})
    flat.fit_prior(source)
    assert torch.equal(flat.build(cfg).model.heads["bilm"].decoder.bias, torch.zeros(48))


def test_pretraining_starts_the_softmax_bias_at_the_unigram(elmo_run):
    """The pre-training path calls ``fit_prior``: after 8 steps at lr 1e-2 (each bias moves
    by about 0.01 a step) the saved bias still spans the log frequencies of the corpus."""
    _, root, _ = elmo_run
    bias = load_file(str(root / "run" / "model" / "model.safetensors"))["heads.bilm.decoder.bias"]
    assert float(bias.max() - bias.min()) > 3.0
