"""Compression (issue 14): distillation losses by hand, a distilled student moving toward
its teacher, head pruning = head masking, LayerDrop at rate 0 and Theseus at p = 1,
magnitude pruning masks, int8 quantization within tolerance and the accuracy check, and
the bad inputs (impossible layer map, tokenizer mismatch, too many heads)."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sesame.compress import losses
from sesame.compress.distill import DistillConfig, DistillModule, check_tokenizers, uniform_map
from sesame.compress.surgery import head_importance, head_mask, keep_layers, least_important, prune_heads
from sesame.config import ModelConfig
from sesame.errors import ConfigError, TokenizerError
from sesame.finetune import finetune
from sesame.models import build_model, load_model, save_model
from sesame.tasks import Classification, TextExample

QUICK = {"steps": 3, "batch_size": 8, "log_every": 1, "threads": 1, "warmup": 0}
TEXTS = ["a great film", "awful and boring", "i loved it", "worst movie ever", "brilliant acting",
         "a waste of time", "wonderful story", "terrible plot"]


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


def tiny(tok, layers=4, hidden=32, heads=4, **kw):
    return ModelConfig(vocab_size=tok.vocab_size, hidden=hidden, layers=layers, num_heads=heads, intermediate=64,
                       max_positions=64, heads=["pooler", "classify"], dropout=0.0, attention_dropout=0.0, **kw)


@pytest.fixture(scope="module")
def task(tok):
    return Classification(tok, ["0", "1"], {"max_length": 16})


@pytest.fixture(scope="module")
def batch(task):
    exs = [TextExample(t, None, str(i % 2 ^ 1), f"s{i}") for i, t in enumerate(TEXTS)]
    return task.transform({"examples": exs}, np.random.default_rng(0))


# ---------------------------------------------------------------- losses by hand

def test_soft_kl_and_soft_ce_equal_a_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    T = 2.0

    def softmax(row):
        e = [math.exp(x / T) for x in row]
        return [x / sum(e) for x in e]

    kl = ce = 0.0
    for rs, rt in zip(s.tolist(), t.tolist()):
        ps, pt = softmax(rs), softmax(rt)
        kl += sum(b * math.log(b / a) for a, b in zip(ps, pt))
        ce += -sum(b * math.log(a) for a, b in zip(ps, pt))
    assert losses.soft_kl(s, t, T).item() == pytest.approx(kl * T * T, rel=1e-6)
    assert losses.soft_ce(s, t, T).item() == pytest.approx(ce, rel=1e-6)
    assert losses.soft_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-7)


def test_cosine_mse_and_attention_mse_equal_a_hand_computation():
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # (1, 3, 2); the third token is padding
    t = torch.tensor([[[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    cos = ((1 - 1 / math.sqrt(2)) + (1 - 1.0)) / 2
    assert losses.cosine(s, t, valid).item() == pytest.approx(cos, rel=1e-6)
    assert losses.cosine(s, t, valid, torch.tensor([3])).item() == pytest.approx(3 * cos, rel=1e-6)
    mse = ((0 + 1) / 2 + (0 + 1) / 2) / 2
    assert losses.mse(s, t, valid).item() == pytest.approx(mse, rel=1e-6)
    a = torch.tensor([[[[1.0, 2.0, float("-inf")], [0.0, 0.0, float("-inf")], [9.0, 9.0, 9.0]]]])
    b = torch.zeros(1, 1, 3, 3)
    assert losses.attention_mse(a, b, valid).item() == pytest.approx((1 + 4 + 0 + 0) / 4, rel=1e-6)


def test_minilm_value_relation_equals_a_hand_computation(tok, batch):
    vs = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]])  # (B 1, H 1, T 3, D 2); token 3 is padding
    vt = torch.tensor([[[[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]]]])
    valid = torch.tensor([[True, True, False]])

    def relation(v):  # softmax over the two real keys of v_i . v_j / sqrt(2)
        rows = []
        for i in range(2):
            e = [math.exp(sum(a * b for a, b in zip(v[i], v[j])) / math.sqrt(2)) for j in range(2)]
            rows.append([x / sum(e) for x in e])
        return rows

    rs, rt = relation(vs[0, 0].tolist()), relation(vt[0, 0].tolist())
    got = losses.value_relation(vs, valid)[0, 0]
    assert got[:2, :2].flatten().tolist() == pytest.approx(sum(rs, []), rel=1e-6)
    assert got[:, 2].abs().max().item() == 0.0  # the padded key
    kl = sum(b * math.log(b / a) for row_s, row_t in zip(rs, rt) for a, b in zip(row_s, row_t)) / 2
    hand = losses.relation_kl(losses.value_relation(vs, valid), losses.value_relation(vt, valid), valid)
    assert hand.item() == pytest.approx(kl, rel=1e-6)
    # in a distillation module the term reads the last layers' real value vectors
    module = distill_pair(tok, {"method": "kd", "kd": 0.0, "hard": 0.0, "value_relation": 1.0})
    module.eval()
    out = module(batch)
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    keep = batch["labels"] != -100
    real = batch["attention_mask"].bool()

    def values(model):  # the last layer's value projection of its input, by hand
        attn = model.body.layers[-1].attn
        x = model(*args, output_hidden_states=True).hidden_states[-2]
        v = x @ attn.qkv.weight[-attn.heads * attn.dim:].T + attn.qkv.bias[-attn.heads * attn.dim:]
        return v.view(*x.shape[:2], attn.heads, attn.dim).transpose(1, 2)

    want = losses.relation_kl(losses.value_relation(values(module.student), real),
                              losses.value_relation(values(module.teacher), real), real, keep)
    assert out.metrics["loss_value_relation"][0] == pytest.approx(want.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5) and want.item() > 0


def test_uniform_layer_map_and_impossible_maps():
    assert uniform_map(3, 6) == [2, 4, 6]
    assert uniform_map(4, 12) == [3, 6, 9, 12]
    with pytest.raises(ConfigError, match="no deeper than its teacher"):
        uniform_map(8, 6)


# ---------------------------------------------------------------- distillation

def distill_pair(tok, cfg, student_layers=2, student_hidden=32, student_heads=4):
    torch.manual_seed(0)
    teacher = build_model(tiny(tok, layers=4))
    with torch.no_grad():  # a confident teacher: logits far from uniform, different per example
        teacher.heads["classify"].classifier.weight.mul_(300)
    torch.manual_seed(1)
    student = build_model(tiny(tok, layers=student_layers, hidden=student_hidden, heads=student_heads))
    return DistillModule(teacher, student, DistillConfig.from_dict(cfg), "classify")


def test_distilled_student_moves_toward_the_teacher(tok, task, batch):
    module = distill_pair(tok, {"method": "kd", "hard": 0.0, "cos": 1.0}, student_hidden=24, student_heads=4)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=3e-3)
    assert all(not p.requires_grad for p in module.teacher.parameters())
    first = None
    for _ in range(8):
        module.train()
        assert not module.teacher.training
        out = module(batch)
        kl = out.metrics["loss_kd"][0]
        first = kl if first is None else first
        opt.zero_grad()
        (out.loss / out.count).backward()
        opt.step()
    assert all(p.grad is None for p in module.teacher.parameters())
    assert kl < 0.5 * first


def test_task_distillation_losses_are_the_weighted_sum(tok, batch):
    module = distill_pair(tok, {"method": "kd", "kd": 0.5, "hard": 2.0, "temperature": 3.0})
    module.eval()
    out = module(batch)
    keep = batch["labels"] != -100
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    zs = module.student(*args).logits["classify"][keep]
    zt = module.teacher(*args).logits["classify"][keep]
    hand = 0.5 * losses.soft_kl(zs, zt, 3.0) + 2.0 * F.cross_entropy(zs, batch["labels"][keep], reduction="sum")
    assert out.loss.item() == pytest.approx(hand.item(), rel=1e-5)
    assert out.count == int(keep.sum())


def test_bad_student_and_tokenizer_give_clear_errors(tok, tmp_path):
    with pytest.raises(ConfigError, match="no deeper than its teacher"):
        distill_pair(tok, {"method": "tinybert-task"}, student_layers=6)
    with pytest.raises(ConfigError, match="different head counts"):
        distill_pair(tok, {"method": "tinybert-task"}, student_heads=2)
    with pytest.raises(TokenizerError, match="vocab_size"):
        check_tokenizers(None, None, 30522, 8192)
    from sesame.tokenize import train_tokenizer
    from sesame.config.tokenizer import TokenizerConfig

    corpus = tmp_path / "c.txt"
    corpus.write_text("a small corpus for a different tokenizer\n" * 20)
    other = train_tokenizer([str(corpus)], TokenizerConfig(kind="wordpiece", vocab_size=60), show_progress=False)
    with pytest.raises(TokenizerError, match="tokenizer differs"):
        check_tokenizers(tok, other, 30522, 30522)


def test_a_random_student_follows_the_training_seed(tok, tmp_path):
    from sesame.compress.distill import student_model

    teacher = build_model(tiny(tok))
    spec = tmp_path / "student.toml"
    spec.write_text("[model]\nlayers = 2\n")
    cfg = DistillConfig.from_dict({"method": "kd", "init": "random"}, "distill")
    weights = {s: student_model(str(spec), teacher, tok, cfg, seed=s)[0].state_dict() for s in (0, 1)}
    again = student_model(str(spec), teacher, tok, cfg, seed=1)[0].state_dict()
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert all(torch.equal(again[k], weights[1][k]) for k in again)


# ---------------------------------------------------------------- pruning

def test_pruned_heads_equal_masked_heads_and_survive_save_load(tok, task, batch, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny(tok, layers=3)).eval()
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    module = task.module_class(model)
    score = head_importance(module, model, [batch])
    chosen = least_important(score, 5, [4, 4, 4])
    assert sum(map(len, chosen.values())) == 5 and all(len(v) < 4 for v in chosen.values())
    mask = torch.ones(3, 4)
    for layer, heads in chosen.items():
        mask[layer, heads] = 0.0
    with torch.no_grad(), head_mask(model, mask):
        ref = model(*args).logits["classify"]
    before = model.num_parameters()
    prune_heads(model, chosen)
    assert model.config.head_counts == [4 - len(chosen.get(i, [])) for i in range(3)]
    assert model.num_parameters() == before - 5 * (3 * (32 * 8 + 8) + 8 * 32)  # q/k/v rows + biases, out columns
    with torch.no_grad():
        assert torch.allclose(model(*args).logits["classify"], ref, atol=1e-5)
    save_model(model, tmp_path / "pruned")
    loaded, _ = load_model(tmp_path / "pruned")
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(*args).logits["classify"], ref, atol=1e-5)
    from sesame.errors import ConversionError
    from sesame.models.hf import to_hf

    with pytest.raises(ConversionError, match="transformers 5 removed head pruning"):
        loaded.config = loaded.config.replace(family="bert")
        to_hf(loaded, tmp_path / "hf")


def test_pruning_more_heads_than_exist_is_refused(tok):
    model = build_model(tiny(tok, layers=2))
    with pytest.raises(ConfigError, match="has 8 attention heads"):
        least_important(torch.rand(2, 4), 8, [4, 4])
    with pytest.raises(ConfigError, match="cannot prune head"):
        prune_heads(model, {0: [4]})
    with pytest.raises(ConfigError, match="leave none"):
        prune_heads(model, {1: [0, 1, 2, 3]})


def test_gradual_magnitude_pruning_reaches_its_sparsity_and_keeps_masks(tok):
    from sesame.compress.prune import MagnitudeConfig, MagnitudePruner

    torch.manual_seed(0)
    model = build_model(tiny(tok, layers=2))
    holder = torch.nn.Module()
    pruner = MagnitudePruner(model, MagnitudeConfig(sparsity=0.8, every=2, end=10, scope="layer"), 10, holder)
    assert pruner.target(0) == 0.0 and pruner.target(10) == pytest.approx(0.8)
    assert 0.0 < pruner.target(5) < 0.8 and pruner.target(5) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    for step in range(11):
        pruner.on_step(step)
        with torch.no_grad():
            for p in pruner.params.values():
                p.add_(0.01)  # an optimizer step moves pruned weights; the next step re-masks them
    pruner.finish()
    report = pruner.report()
    assert all(s == pytest.approx(0.8, abs=1e-3) for s in report["matrices"].values())
    assert sum(1 for k in holder.state_dict() if k.startswith("prune_mask__")) == len(pruner.params)
    g = MagnitudePruner(model, MagnitudeConfig(sparsity=0.5, scope="global"), 10, torch.nn.Module())
    g.finish()
    assert g.report()["overall"] >= 0.5


# ---------------------------------------------------------------- LayerDrop and Theseus

def test_layerdrop_rate_zero_is_the_plain_model_and_keeps_subsets(tok, batch):
    from sesame.compress.surgery import every_other

    torch.manual_seed(0)
    plain = build_model(tiny(tok, layers=4))
    torch.manual_seed(0)
    dropping = build_model(tiny(tok, layers=4, layerdrop=0.0))
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    plain.train(), dropping.train()
    assert torch.equal(plain(*args).logits["classify"], dropping(*args).logits["classify"])
    dropping.body.layers.layerdrop = 0.5
    torch.manual_seed(3)
    outs = {tuple(dropping(*args).logits["classify"].flatten().tolist()) for _ in range(6)}
    assert len(outs) > 1  # layers really drop in training
    half = keep_layers(plain, every_other(4)).eval()
    assert half.config.layers == 2
    skips = [plain.body.layers[i].register_forward_hook(lambda m, a, out: a[0]) for i in (1, 3)]
    with torch.no_grad():
        skipped = plain.eval()(*args).logits["classify"]  # layers 1 and 3 made the identity
        assert torch.allclose(half(*args).logits["classify"], skipped, atol=1e-6)
    for h in skips:
        h.remove()


def test_theseus_with_p_one_is_the_successor(tok, batch):
    from sesame.compress.replace import compound, successor

    torch.manual_seed(0)
    model = build_model(tiny(tok, layers=4))
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    compound(model, 2, p=1.0)
    model.train()
    with torch.no_grad():
        for p in model.body.layers.succ.parameters():
            p.add_(0.01 * torch.randn_like(p))  # the successor differs from the predecessor's layers
        mixed = model(*args).logits["classify"]
    small = successor(model).train()
    assert small.config.layers == 2
    with torch.no_grad():
        assert torch.allclose(small(*args).logits["classify"], mixed, atol=1e-6)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("body.layers.succ.") for n in trainable)
    model.body.layers.p = 0.0
    with torch.no_grad():
        pred = model(*args).logits["classify"]
    assert not torch.allclose(pred, mixed)
    # a step that replaces nothing (p = 0 here; at p < 1, a draw that keeps every predecessor
    # module) runs the frozen predecessor alone: it back-propagates a zero gradient, not an error
    model.zero_grad(set_to_none=True)
    model(*args).logits["classify"].sum().backward()
    grads = [p.grad for p in model.body.layers.succ.parameters()]
    assert all(g is not None and not g.any() for g in grads)


# ---------------------------------------------------------------- quantization

def test_int8_outputs_stay_within_tolerance_and_refuse_to_save(tok, task, batch, tmp_path):
    from sesame.compress import quantize as Q
    from sesame.errors import CheckpointError

    torch.manual_seed(0)
    model = build_model(tiny(tok, layers=2)).eval()
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        ref = model(*args, output_hidden_states=True).hidden
        dyn = Q.dynamic(model)(*args).hidden
        st = Q.static(model, [batch], lambda m, b: task.module_class(m)(b))(*args).hidden
    scale = ref.abs().max()
    assert (dyn - ref).abs().max() < 0.05 * scale  # stated tolerance: 5% of the largest activation
    assert (st - ref).abs().max() < 0.1 * scale
    assert Q.tensor_bytes(Q.dynamic(model)) < Q.tensor_bytes(model)
    with pytest.raises(CheckpointError, match="int8"):
        save_model(Q.dynamic(model), tmp_path / "q")
    decoder = build_model(ModelConfig(vocab_size=50, hidden=32, layers=2, num_heads=4, intermediate=64,
                                      max_positions=16, arch="decoder", heads=["lm"], prenorm=True)).eval()
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        ref, q = decoder(ids).hidden, Q.dynamic(decoder)(ids).hidden
    assert (q - ref).abs().max() < 0.05 * ref.abs().max()  # decoders too (the tied lm head stays fp32)


# ---------------------------------------------------------------- end to end on real data (tiny budgets)

FAST = {"steps": 2, "batch_size": 8, "log_every": 1, "threads": 1, "warmup": 0}


@pytest.fixture(scope="module")
def data_dir(shared_data, tmp_path_factory):
    """The first 60 lines of each real SST-2 split (reading all 67k training lines costs seconds)."""
    root = tmp_path_factory.mktemp("labeled")
    (root / "en" / "sst2").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = (shared_data / "labeled" / "en" / "sst2" / f"{split}.tsv").read_text().splitlines()[:60]
        (root / "en" / "sst2" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def teacher(tok, data_dir, tmp_path_factory):
    """A tiny random 4-layer model fine-tuned on 32 SST-2 examples for 2 steps."""
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden=32, layers=4, num_heads=4, intermediate=64,
                      max_positions=64, heads=["mlm"], dropout=0.0, attention_dropout=0.0, family="bert")
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("teacher")
    save_model(build_model(cfg), root / "base", extra={"tokenizer.json": tok.to_json()})
    finetune(root / "base", "sst2", root / "ft", FAST, {"max_length": 32}, max_train=32, max_eval=16,
             progress=False, say=lambda _: None, data_dir=data_dir)
    return root / "ft" / "model"


def cli(*argv):
    from sesame.cli.main import main

    return main([str(a) for a in argv])


def test_cli_distill_prune_theseus_and_quantize_run_on_sst2(teacher, data_dir, tmp_path, capsys):
    common = ["--data-dir", data_dir, "--max-train", 16, "--max-eval", 16, "--no-progress", "--set", "train.steps=2",
              "--set", "train.batch_size=8", "--set", "train.threads=1"]
    assert cli("distill", teacher, "--dataset", "sst2", "--student", "", "--method", "distilbert",
               "--out", tmp_path / "d", *common) == 0
    student, _ = load_model(tmp_path / "d" / "model")
    assert student.config.layers == 2
    assert cli("distill", teacher, "--dataset", "sst2", "--student", "", "--method", "tinybert-task",
               "--set", "student.layers=2", "--set", "student.hidden=16", "--set", "student.intermediate=32",
               "--out", tmp_path / "t", *common) == 0
    assert cli("prune", teacher, "--dataset", "sst2", "--method", "magnitude", "--sparsity", 0.5,
               "--out", tmp_path / "m", *common) == 0
    from safetensors.torch import load_file

    masks = load_file(str(tmp_path / "m" / "model" / "masks.safetensors"))
    pruned, _ = load_model(tmp_path / "m" / "model")
    w = dict(pruned.named_parameters())
    assert all(torch.equal(w[k] == 0, m == 0) or (w[k] == 0).sum() >= (m == 0).sum() for k, m in masks.items())
    assert cli("prune", teacher, "--dataset", "sst2", "--method", "heads", "--fraction", 0.25,
               "--out", tmp_path / "h", "--max-train", 16, "--max-eval", 16, "--data-dir", data_dir) == 0
    assert load_model(tmp_path / "h" / "model")[0].config.head_counts is not None
    assert cli("prune", teacher, "--dataset", "sst2", "--method", "theseus", "--layers", 2, "--p", 0.5,
               "--out", tmp_path / "th", *common) == 0
    assert load_model(tmp_path / "th" / "model")[0].config.layers == 2
    assert cli("prune", teacher, "--dataset", "sst2", "--method", "heads", "--heads", 16,
               "--out", tmp_path / "h2", "--max-train", 16, "--data-dir", data_dir) == 2
    assert "16 heads" in capsys.readouterr().err
    assert cli("quantize", teacher, "--dataset", "sst2", "--method", "dynamic", "--out", tmp_path / "q") == 2
    assert "scales" in capsys.readouterr().err


def test_compression_outputs_follow_the_overwrite_policy(teacher, data_dir, tmp_path, capsys):
    """distill / prune / quantize refuse a non-empty --out unless --overwrite, which replaces only
    their own outputs (before: prune silently replaced the model and summary)."""
    out = tmp_path / "h"
    heads = ["prune", teacher, "--dataset", "sst2", "--method", "heads", "--heads", 1, "--out", out,
             "--max-train", 16, "--max-eval", 16, "--data-dir", data_dir]
    assert cli(*heads) == 0
    first = (out / "model" / "model.safetensors").read_bytes()
    (out / "notes.txt").write_text("mine")
    (out / "model" / "mine.txt").write_text("mine too")
    capsys.readouterr()
    assert cli(*heads[:7], 2, *heads[8:]) == 2
    assert cli("distill", teacher, "--dataset", "sst2", "--student", "", "--out", out, "--data-dir", data_dir) == 2
    assert cli("quantize", teacher, "--dataset", "sst2", "--method", "qat", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and err.count("pass --overwrite") == 3 and "--resume" not in err
    assert (out / "model" / "model.safetensors").read_bytes() == first  # nothing was touched
    assert cli(*heads[:7], 2, *heads[8:], "--overwrite") == 0
    assert sum(load_model(out / "model")[0].config.head_counts) == 16 - 2  # the second run's model
    assert (out / "notes.txt").read_text() == "mine" and (out / "model" / "mine.txt").read_text() == "mine too"
    assert json.loads((out / "summary.json").read_text())["count"] == 2


def test_the_accuracy_check_compares_real_metrics(teacher, data_dir, monkeypatch):
    from sesame.compress import quantize as Q

    r = Q.quantize(teacher, "sst2", "dynamic", max_eval=24, max_train=16, check=True, data_dir=data_dir)
    acc = r["fp32"]["dev"]["metrics"]["accuracy"]
    assert r["delta"]["dev"] == pytest.approx(r["int8"]["dev"]["metrics"]["accuracy"] - acc)
    real = Q.dynamic

    def broken(model):  # a quantizer that flips the classifier: the check must see the damage
        out = real(model)
        out.heads["classify"] = _Flip(out.heads["classify"])
        return out

    monkeypatch.setattr(Q, "dynamic", broken)
    bad = Q.quantize(teacher, "sst2", "dynamic", max_eval=24, max_train=16, check=True, data_dir=data_dir)
    assert bad["fp32"]["dev"]["metrics"]["accuracy"] == acc
    assert bad["int8"]["dev"]["metrics"]["accuracy"] == pytest.approx(1 - r["int8"]["dev"]["metrics"]["accuracy"])


class _Flip(torch.nn.Module):
    token_level = False

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, *args, **kwargs):
        return self.head(*args, **kwargs).flip(-1)


def test_task_agnostic_distillation_on_corpus_text(tok, shared_data, tmp_path):
    from sesame.compress.distill import distill

    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden=32, layers=4, num_heads=4, intermediate=64,
                      max_positions=64, heads=["mlm"], family="bert")
    torch.manual_seed(0)
    save_model(build_model(cfg), tmp_path / "t", extra={"tokenizer.json": tok.to_json()})
    text = (shared_data / "corpora" / "en" / "moby-dick" / "moby_dick.txt").read_text()[:8000]
    (tmp_path / "c.txt").write_text(text)
    quick = {"steps": 2, "batch_size": 8, "threads": 1, "warmup": 0, "log_every": 1}
    for method, weights in (("tinybert-general", {"embed", "hidden", "attention"}), ("kd", {"kd", "hard"})):
        s = distill(tmp_path / "t", "", tmp_path / method, {"method": method}, corpus=[str(tmp_path / "c.txt")],
                    data={"seq_len": 32, "workers": 1}, train=quick, student_overrides={"layers": 2}, progress=False)
        assert {k for k, v in s["weights"].items() if v} == weights
        assert math.isfinite(s["train"]["loss"]) and load_model(tmp_path / method / "model")[0].config.layers == 2
