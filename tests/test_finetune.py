"""Fine-tuning end to end and the transfer strategies, on a tiny random BERT with the
real uncased vocabulary: a run directory that reloads and predicts, trainable fractions,
re-initialisation, layer-wise learning rates, gradual unfreezing, the scalar mix,
multi-task and two-stage fine-tuning, evaluation of a split and the CLI."""
import argparse
import json

import numpy as np
import pytest
import torch

import sesame
from sesame.config import ModelConfig, TrainConfig
from sesame.errors import ConfigError
from sesame.finetune import DATASETS, evaluate_dataset, finetune, multitask, read_split, two_stage
from sesame.models import build_model, load_model, save_model
from sesame.tasks import Classification, TextExample
from sesame.train import ArraySource, Trainer, build_optimizer
from sesame.transfer import (LayerGroups, MixedSource, MultiTask, MultiTaskModule, StrategyConfig, apply,
                             prepare_model, share_body, trainable_fraction)

QUICK = {"steps": 3, "batch_size": 8, "log_every": 1, "threads": 1, "warmup": 0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(shared_data):
    path = shared_data / "vocab" / "google_uncased_en_vocab.txt"
    if not path.is_file():
        pytest.skip(f"the BERT vocabulary {path} is absent")
    from sesame.tokenize import load_tokenizer

    return load_tokenizer(path)


@pytest.fixture(scope="module")
def base(tok, tmp_path_factory):
    """A tiny random pre-trained-style model directory (mlm + nsp heads, so a pooler)."""
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden=32, layers=2, num_heads=4, intermediate=64,
                      max_positions=128, heads=["mlm", "nsp"], dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("base") / "model"
    save_model(build_model(cfg), out, extra={"tokenizer.json": tok.to_json()})
    return out


@pytest.fixture(scope="module")
def run(base, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "sst2"
    summary = finetune(base, "sst2", out, {**QUICK, "eval_every": 2, "eval_batches": 1}, max_train=32, max_eval=24,
                       progress=False, say=lambda _: None)
    return out, summary


TEXTS = ["a great film", "awful and boring", "i loved it", "worst movie ever", "brilliant acting",
         "a waste of time", "wonderful story", "terrible plot"]


def examples():
    return [TextExample(t, None, str(i % 2 ^ 1), f"s{i}") for i, t in enumerate(TEXTS)]


def wrapped(base, tok, strategy, labels=("0", "1")):
    model, _ = load_model(base)
    strategy = StrategyConfig.from_dict(strategy)
    model, _ = prepare_model(model, strategy)
    task = Classification(tok, list(labels), {"max_length": 16})
    module = task.wrap(model)
    return task, module, apply(module, strategy, steps_per_epoch=1)


def batch_of(task):
    return task.transform({"examples": examples()}, np.random.default_rng(0))


def grads(module, task):
    module.zero_grad(set_to_none=True)
    out = module(batch_of(task))
    out.loss.backward()
    return {n: p.grad for n, p in module.named_parameters()}


# ---------------------------------------------------------------- end to end


def test_finetune_run_reloads_and_predicts(run):
    out, summary = run
    model_dir = out / "model"
    for name in ("model.safetensors", "config.toml", "tokenizer.json", "labels.json", "finetune.json"):
        assert (model_dir / name).is_file(), name
    assert json.loads((model_dir / "labels.json").read_text()) == ["0", "1"]
    assert (out / "eval" / "dev.json").is_file() and (out / "eval" / "test.json").is_file()
    assert (out / "summary.json").is_file() and summary["train"]["steps"] == 3
    assert summary["trainable"]["fraction"] == 1.0 and summary["train_examples"] == 32
    assert summary["eval"]["dev"]["examples"] == 24 and summary["train"]["eval"]["step"] == 3
    predict = sesame.pipeline("text-classification", model_dir)
    preds = predict(["a fine film", "dull"])
    assert [p[0]["label"] in ("0", "1") for p in preds] == [True, True]
    # evaluating the saved model on the same examples reproduces the run's own numbers
    again = evaluate_dataset(model_dir, "sst2", "dev", max_examples=24)
    assert again["metrics"] == pytest.approx(summary["eval"]["dev"]["metrics"])


def test_evaluate_dataset_on_a_tiny_split(run, base, tmp_path):
    folder = tmp_path / "en" / "sst2"
    folder.mkdir(parents=True)
    rows = ["label\tsentence"] + [f"{i % 2}\t{t}" for i, t in enumerate(TEXTS[:6])]
    (folder / "dev.tsv").write_text("\n".join(rows) + "\n")
    result = evaluate_dataset(run[0] / "model", "sst2", "dev", tmp_path, 4, tmp_path / "report")
    assert result["examples"] == 6 and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert (tmp_path / "report" / "sst2-dev.json").is_file()
    with pytest.raises(ConfigError, match="fine-tune it first"):
        evaluate_dataset(base, "sst2", "dev", tmp_path)  # the pre-trained model has no classifier
    with pytest.raises(ConfigError, match="did you mean `sst2`"):
        evaluate_dataset(base, "sst3", "dev", tmp_path)
    with pytest.raises(ConfigError, match="no split 'test'.*train, dev"):
        read_split("cola", "test")


def test_registry_splits_are_documented_and_carved_deterministically(shared_data):
    assert {"sst2", "cola", "mrpc", "chnsenticorp", "tnews", "ocnli", "bustm", "conll2003", "wnut17", "msra",
            "cmrc2018", "c3", "chid", "tatoeba", "multi30k"} <= set(DATASETS)
    for name in ("mrpc", "msra", "cmrc2018", "c3", "tatoeba"):
        assert DATASETS[name].note
    train, dev = read_split("c3", "train"), read_split("c3", "dev")
    assert not {ex.context for ex in train} & {ex.context for ex in dev}  # carved by document
    assert [ex.id for ex in read_split("c3", "dev")] == [ex.id for ex in dev]


# ---------------------------------------------------------------- strategies


def test_frozen_trains_only_heads_and_the_scalar_mix(base, tok):
    task, module, plan = wrapped(base, tok, {"kind": "frozen", "scalar_mix": True})
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("model.heads.", "model.mix.")) for n in names)
    assert {"model.mix.scalars", "model.mix.gamma", "model.heads.classify.classifier.weight"} <= names
    frac = trainable_fraction(module)
    assert frac["trainable"] == sum(p.numel() for n, p in module.named_parameters() if n in names)
    assert frac["fraction"] < 0.01
    g = grads(module, task)
    assert g["model.mix.scalars"].abs().sum() > 0 and g["model.mix.gamma"].abs() > 0
    assert all(g[n] is None for n in g if n.startswith("model.body."))


def test_scalar_mix_is_saved_with_the_model(base, tok, tmp_path):
    task, module, _ = wrapped(base, tok, {"kind": "frozen", "scalar_mix": True})
    with torch.no_grad():
        module.model.mix.scalars.copy_(torch.tensor([2.0, -1.0, 0.5]))
    save_model(module.model, tmp_path / "m")
    again, _ = load_model(tmp_path / "m")
    assert again.config.scalar_mix and torch.equal(again.mix.scalars, module.model.mix.scalars)
    batch = batch_of(task)
    out = again(batch["input_ids"], batch["attention_mask"], output_hidden_states=True)
    w = again.mix.weights()
    assert torch.allclose(out.hidden, sum(w[i] * h for i, h in enumerate(out.hidden_states)), atol=1e-5)


def test_adapters_train_adapters_heads_and_norms_and_start_as_identity(base, tok):
    source, _ = load_model(base)
    task, module, plan = wrapped(base, tok, {"kind": "adapters", "adapter_size": 4})
    assert module.model.config.adapter_size == 4
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    body = {n for n in names if n.startswith("model.body.")}
    assert body and all("_adapter." in n or "norm" in n for n in body)
    assert any("attn_adapter" in n for n in body) and any("ffn_adapter" in n for n in body)
    assert 0 < trainable_fraction(module)["fraction"] < 0.05
    batch = batch_of(task)
    with torch.no_grad():  # fresh adapters are the identity: the body computes what it did before
        a = source.body(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        b = module.model.body(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.allclose(a, b, atol=1e-6)


def test_embeddings_only_transfer_reinitialises_the_blocks(base, tok):
    source = dict(load_model(base)[0].named_parameters())
    _, module, plan = wrapped(base, tok, {"transfer_layers": "embeddings"})
    params = dict(module.model.named_parameters())
    embed = [n for n in source if n.startswith("body.embed.")]
    blocks = [n for n in source if n.startswith("body.layers.") and n.endswith(".weight") and "norm" not in n]
    assert embed and blocks
    assert all(torch.equal(params[n], source[n]) for n in embed)
    assert all(not torch.equal(params[n], source[n]) for n in blocks)
    assert not torch.equal(params["heads.pooler.dense.weight"], source["heads.pooler.dense.weight"])
    with pytest.raises(ConfigError, match="top layer only"):
        StrategyConfig.from_dict({"transfer_layers": "top", "scalar_mix": True})


def test_no_transfer_is_random_init_of_the_same_architecture(base, tok):
    source = dict(load_model(base)[0].named_parameters())
    _, module, plan = wrapped(base, tok, {"transfer_layers": "none"})
    params = dict(module.model.named_parameters())
    weights = [n for n in source if n.startswith("body.") and n.endswith(".weight") and "norm" not in n]
    assert weights and all(not torch.equal(params[n], source[n]) for n in weights)
    assert all(params[n].shape == source[n].shape for n in weights)
    std = params["body.embed.tokens.weight"].std().item()  # drawn afresh at the configured scale
    assert abs(std - module.model.config.init_std) < 0.1 * module.model.config.init_std
    assert any("random init" in note for note in plan.notes)


def test_fine_tuning_dropout_replaces_the_models_and_keeps_its_weights(base, tok):
    source, _ = load_model(base)
    model, notes = prepare_model(source, StrategyConfig.from_dict({"dropout": 0.1, "attention_dropout": 0.2}))
    assert (model.config.dropout, model.config.attention_dropout) == (0.1, 0.2)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    assert all(torch.equal(p, dict(model.named_parameters())[n]) for n, p in source.named_parameters())
    ids = torch.tensor([[101, 2307, 2143, 102]])
    with torch.no_grad():  # eval mode: dropout off, the same function
        assert torch.equal(model.eval().body(ids), source.eval().body(ids))
    assert any("dropout = 0.1" in n for n in notes)
    assert prepare_model(source, StrategyConfig.from_dict({"dropout": 0.0}))[0] is source  # already the model's
    with pytest.raises(ConfigError, match="must be in"):
        StrategyConfig.from_dict({"dropout": 1.0})


def test_layer_wise_learning_rates_follow_the_decay(base, tok):
    _, module, plan = wrapped(base, tok, {"layer_lr_decay": 0.5})
    opt = build_optimizer(module, TrainConfig(lr=1e-3))
    groups = LayerGroups([n for n, _ in module.named_parameters()])
    assert groups.layers == 2
    seen = set()
    for g in opt.param_groups:
        for name in g["names"]:
            expected = 1e-3 * 0.5 ** max(2 - groups(name), 0)
            assert g["lr"] == pytest.approx(expected), name
            seen.add(round(g["lr"] / 1e-3, 4))
    assert seen == {0.25, 0.5, 1.0}  # embeddings, block 1, block 2 and heads
    assert groups("model.body.embed.tokens.weight") == 0 and groups("model.heads.classify.classifier.bias") == 3


def test_gradual_unfreezing_goes_top_down_one_group_per_epoch(base, tok, tmp_path):
    task, module, plan = wrapped(base, tok, {"gradual_unfreeze": True, "unfreeze_every": 1})
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    source = ArraySource([{"examples": ex} for ex in examples()], 8, seed=0)
    cfg = TrainConfig(**{**QUICK, "lr": 1e-2})
    trainer = Trainer(task, module.model.config, cfg, source, tmp_path, module=module, progress=False,
                      on_step=plan.on_step)
    assert len(trainer.params) == len(list(module.parameters()))  # the optimizer holds every group
    trainable = lambda: {plan.groups(n) for n, p in module.named_parameters() if p.requires_grad}  # noqa: E731
    plan.on_step(0)
    assert trainable() == {3}  # heads only
    trainer.compute_gradients(0)
    assert all(p.grad is None for n, p in module.named_parameters() if n.startswith("model.body."))
    assert [plan.lowest_unfrozen(s) for s in range(5)] == [3, 2, 1, 0, 0]
    trainer.fit()  # steps 0-2: heads, then block 2, then block 1; the embeddings stay frozen
    after = dict(module.named_parameters())
    changed = lambda prefix: any(not torch.equal(before[n], after[n]) for n in after if n.startswith(prefix))  # noqa
    assert changed("model.heads.") and changed("model.body.layers.1.") and changed("model.body.layers.0.")
    assert not changed("model.body.embed.")
    plan.on_step(3)
    assert trainable() == {0, 1, 2, 3}


def test_multitask_shares_the_body_and_trains_a_head_per_task(base, tok, tmp_path):
    model, _ = load_model(base)
    tasks = {"a": Classification(tok, ["0", "1"], {"max_length": 16}),
             "b": Classification(tok, ["0", "1", "2"], {"max_length": 16})}
    modules = {name: task.wrap(share_body(model)) for name, task in tasks.items()}
    assert modules["a"].model.body is modules["b"].model.body
    module = MultiTaskModule(modules)
    plan = apply(module, "full")
    rows = examples()
    three = [TextExample(ex.text, None, str(i % 3)) for i, ex in enumerate(rows)]
    source = MixedSource({"a": ArraySource([{"examples": ex} for ex in rows], 4, seed=0),
                          "b": ArraySource([{"examples": ex} for ex in three], 4, seed=1)}, "round_robin")
    assert [source.task_at(s)[0] for s in range(4)] == ["a", "b", "a", "b"]
    sized = lambda: MixedSource({"a": ArraySource(list(range(12)), 4), "b": ArraySource(list(range(4)), 4)})  # noqa
    drawn = [sized().task_at(s)[0] for s in range(40)]
    assert drawn == [sized().task_at(s)[0] for s in range(40)] and 20 < drawn.count("a") < 40  # ~3:1, fixed
    cfg = TrainConfig(**{**QUICK, "batch_size": 4, "steps": 2, "lr": 1e-2})
    trainer = Trainer(MultiTask(tasks), model.config, cfg, source, tmp_path, module=module, progress=False,
                      on_step=plan.on_step)
    body = [p for n, p in module.named_parameters() if ".body.layers." in n]
    for step, (mine, other) in enumerate((("a", "b"), ("b", "a"))):
        trainer.compute_gradients(step)
        assert all(p.grad is not None for p in modules[mine].model.heads["classify"].parameters())
        assert all(p.grad is None for p in modules[other].model.heads["classify"].parameters())
        assert sum(float(p.grad.abs().sum()) for p in body) > 0  # the shared body learns from both tasks
    heads = {k: m.model.heads["classify"].classifier.weight.detach().clone() for k, m in modules.items()}
    trainer.fit()
    assert all(not torch.equal(heads[k], m.model.heads["classify"].classifier.weight) for k, m in modules.items())


def test_multitask_run_saves_one_model_per_task_over_one_encoder(base, tmp_path):
    summary = multitask(base, ["sst2", "cola"], tmp_path, {**QUICK, "steps": 2}, max_train=16, mix="round_robin",
                        max_eval=8, progress=False, say=lambda _: None)
    a, _ = load_model(tmp_path / "models" / "sst2")
    b, _ = load_model(tmp_path / "models" / "cola")
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert all(torch.equal(pa[n], pb[n]) for n in pa if n.startswith("body."))
    assert set(summary["tasks"]) == {"sst2", "cola"} and summary["tasks"]["cola"]["eval"]["dev"]["examples"] == 8


def test_two_stage_starts_the_second_stage_from_the_first(base, tmp_path):
    out = two_stage(base, "cola", "sst2", tmp_path, {**QUICK, "steps": 2}, strategy="frozen", max_train=16,
                    max_eval=8, progress=False, say=lambda _: None)
    first = dict(load_model(tmp_path / "stage1" / "model")[0].named_parameters())
    second = dict(load_model(out["model_dir"])[0].named_parameters())
    orig = dict(load_model(base)[0].named_parameters())
    body = [n for n in first if n.startswith("body.")]
    assert all(torch.equal(first[n], second[n]) for n in body)  # frozen second stage: the stage-1 encoder
    assert any(not torch.equal(first[n], orig[n]) for n in body)  # which stage 1 had changed
    assert out["stage2"]["trainable"]["fraction"] < 0.01
    assert any("another data set" in note for note in out["stage2"]["notes"])  # cola's classifier replaced


def test_cli_finetune_frozen_with_scalar_mix(base, tmp_path, capsys):
    from sesame.cli import finetune as verb

    parser = argparse.ArgumentParser()
    verb.add_parser(parser.add_subparsers())
    args = parser.parse_args(["finetune", str(base), "--dataset", "sst2", "--out", str(tmp_path / "run"),
                              "--strategy", "frozen", "--scalar-mix", "--max-train", "16", "--max-eval", "8",
                              "--set", "train.steps=2", "--set", "train.batch_size=8", "--set", "train.lr=0.05",
                              "--set", "task.max_length=32", "--no-progress"])
    assert args.run(args) == 0
    text = capsys.readouterr().out
    assert "trainable parameters" in text and "sst2 dev (8 examples)" in text
    model, _ = load_model(tmp_path / "run" / "model")
    assert model.mix is not None and not torch.allclose(model.mix.scalars, torch.zeros(3))
    bad = parser.parse_args(["finetune", str(base), "--dataset", "sst2", "--set", "model.layers=3"])
    with pytest.raises(ConfigError, match="train.KEY, task.KEY or strategy.KEY"):
        bad.run(bad)


def test_finetune_on_toy_data_beats_chance(base, tmp_path):
    rows = ["text,label"] + [f"{t},{ex.label}" for t, ex in zip(TEXTS, examples())] * 3
    (tmp_path / "toy.csv").write_text("\n".join(rows) + "\n")
    summary = finetune(base, train=tmp_path / "toy.csv", dev=tmp_path / "toy.csv", task="classification",
                       run_dir=tmp_path / "toy", train_config={**QUICK, "steps": 30, "lr": 3e-3},
                       options={"max_length": 16}, progress=False, say=lambda _: None)
    assert summary["eval"]["dev"]["metrics"]["accuracy"] > 0.5  # two balanced classes: chance is 0.5
