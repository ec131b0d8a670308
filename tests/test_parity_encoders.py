"""Hugging Face parity for the BERT-like encoder families: RoBERTa, ALBERT, DistilBERT, ELECTRA.

Each case builds a tiny random HF model (every parameter perturbed so a misplaced bias or
norm cannot hide behind the default init), converts it with ``from_hf``, compares the last
hidden state and every head at non-padded positions, exports with ``to_hf``, reloads the
export in transformers and compares again."""
from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

import torch

from sesame.models.hf import convert_from_hf, convert_to_hf, from_hf, to_hf

TOL = 1e-4
VOCAB = 61
SMALL = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 37, "max_position_embeddings": 40}
ROBERTA = dict(SMALL, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
               eos_token_id=2)
ALBERT = dict(SMALL, embedding_size=16)
ELECTRA = dict(SMALL, embedding_size=16)
DISTILBERT = {"vocab_size": VOCAB, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37,
              "max_position_embeddings": 40}

# case -> (HF class, HF config class, config kwargs, our heads after import, {our output: HF output})
CASES = {
    "roberta-mlm": ("RobertaForMaskedLM", "RobertaConfig", ROBERTA, ["mlm"], {"mlm": "logits"}),
    "roberta-classify": ("RobertaForSequenceClassification", "RobertaConfig", dict(ROBERTA, num_labels=3),
                         ["pooler", "classify"], {"classify": "logits"}),
    "roberta-base": ("RobertaModel", "RobertaConfig", ROBERTA, ["pooler"], {"pooled": "pooler_output"}),
    "albert-pretraining": ("AlbertForPreTraining", "AlbertConfig", ALBERT, ["pooler", "mlm", "sop"],
                           {"mlm": "prediction_logits", "sop": "sop_logits"}),
    "albert-classify": ("AlbertForSequenceClassification", "AlbertConfig", dict(ALBERT, num_labels=3),
                        ["pooler", "classify"], {"classify": "logits"}),
    "distilbert-mlm": ("DistilBertForMaskedLM", "DistilBertConfig", DISTILBERT, ["mlm"], {"mlm": "logits"}),
    "electra-discriminator": ("ElectraForPreTraining", "ElectraConfig", ELECTRA, ["rtd"], {"rtd": "logits"}),
    "electra-generator": ("ElectraForMaskedLM", "ElectraConfig", dict(ELECTRA, hidden_size=24, num_attention_heads=2),
                          ["mlm"], {"mlm": "logits"}),
}
TOKEN_LEVEL = {"mlm", "rtd"}


def make_hf(case: str, path):
    cls_name, cfg_name, kwargs, _, _ = CASES[case]
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(getattr(transformers, cfg_name)(**kwargs))
    with torch.no_grad():
        for p in model.parameters():  # tied parameters appear once
            p.add_(torch.randn_like(p) * 0.1)
    model.eval().save_pretrained(path)
    return model


def batch(case: str, side: str = "right"):
    kwargs = CASES[case][2]
    pad = kwargs.get("pad_token_id", 0)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    for row, n in ((1, 3), (2, 6)):
        if side == "right":
            mask[row, 10 - n:] = 0
        else:
            mask[row, :n] = 0
    ids[mask == 0] = pad
    types = None
    if kwargs.get("type_vocab_size", 2) > 1 and "dim" not in kwargs:
        types = torch.zeros_like(ids)
        types[:, 5:] = 1
    return ids, mask, types


def run_hf(model, ids, mask, types):
    extra = {} if types is None else {"token_type_ids": types}
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **extra)


def run_ours(model, ids, mask, types):
    with torch.no_grad():
        return model(ids, mask, types)


def compare(case, ours, theirs, mask) -> dict[str, float]:
    keep = mask.bool()
    errs = {"hidden": (ours.hidden[keep] - theirs.hidden_states[-1][keep]).abs().max().item()}
    for name, attr in CASES[case][4].items():
        mine = ours.pooled if name == "pooled" else ours.logits[name]
        ref = getattr(theirs, attr)
        if name in TOKEN_LEVEL:
            mine, ref = mine[keep], ref[keep]
        else:  # sentence-level outputs read position 0: compare rows where it is a real token
            mine, ref = mine[keep[:, 0]], ref[keep[:, 0]]
        assert mine.shape == ref.shape, f"{case} {name}: shape {tuple(mine.shape)} vs {tuple(ref.shape)}"
        errs[name] = (mine - ref).abs().max().item()
    return errs


def check(errs: dict[str, float], what: str) -> None:
    shown = ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
    print(f"{what}: {shown}")
    assert max(errs.values()) <= TOL, f"{what}: max abs diff over {TOL}: {shown}"


def hf_class(case: str):
    return getattr(transformers, CASES[case][0])


def load_export(case: str, path):
    model, info = hf_class(case).from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"], f"{case}: export lacks {info['missing_keys']}"
    assert not info["unexpected_keys"], f"{case}: export has extra {info['unexpected_keys']}"
    return model.eval()


PARAMS = [(case, "right") for case in CASES] + [("roberta-mlm", "left"), ("roberta-classify", "left")]


@pytest.mark.parametrize("case,side", PARAMS, ids=[f"{c}-{s}" for c, s in PARAMS])
def test_import_export_parity(case, side, tmp_path):
    hf = make_hf(case, tmp_path / "hf")
    model, report = from_hf(tmp_path / "hf")
    model.eval()
    assert model.config.family == case.split("-")[0]
    assert list(model.config.heads) == CASES[case][3]
    assert not report.missing and not report.unexpected, str(report)
    if "classify" in CASES[case][3]:
        assert model.config.num_labels == 3
    ids, mask, types = batch(case, side)
    ours = run_ours(model, ids, mask, types)
    check(compare(case, ours, run_hf(hf, ids, mask, types), mask), f"{case}/{side} import")

    to_hf(model, tmp_path / "export")
    back = load_export(case, tmp_path / "export")
    check(compare(case, ours, run_hf(back, ids, mask, types), mask), f"{case}/{side} export")


@pytest.mark.parametrize("case", ["roberta-mlm", "albert-pretraining", "distilbert-mlm", "electra-generator"])
def test_cli_round_trip(case, tmp_path):
    """HF dir -> sesame dir -> HF dir: the weights come back bit for bit."""
    hf = make_hf(case, tmp_path / "hf")
    report = convert_from_hf(tmp_path / "hf", tmp_path / "sesame")
    assert not report.missing and not report.unexpected, str(report)
    assert (tmp_path / "sesame" / "config.toml").is_file()
    convert_to_hf(tmp_path / "sesame", tmp_path / "back")
    back = load_export(case, tmp_path / "back")
    theirs, again = hf.state_dict(), back.state_dict()
    assert theirs.keys() == again.keys()
    for key, value in theirs.items():
        assert torch.equal(value, again[key]), f"{case}: {key} changed in the round trip"


def test_attention_maps_match_transformers(tmp_path):
    """``output_attentions`` returns each layer's probabilities through the kernel's
    explicit path: equal to HF's eager attentions at real query rows, and the normal
    (SDPA) forward gives the same hidden states as the explicit one."""
    case = "roberta-base"
    hf = make_hf(case, tmp_path / "hf")
    ids, mask, types = batch(case)
    ref = transformers.RobertaModel.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    ours = from_hf(tmp_path / "hf")[0].eval()
    with torch.no_grad():
        plain = ours(ids, mask, types)
        got = ours(ids, mask, types, output_attentions=True)
    assert len(got.attentions) == len(want) == 2
    real = mask.bool()
    for amap, w in zip(got.attentions, want):
        assert amap.probs.shape == w.shape
        assert (amap.probs - w).abs()[real[:, None, :, None].expand_as(w)].max() < 1e-5
        assert torch.allclose(amap.probs.sum(-1)[real[:, None].expand(-1, 4, -1)], torch.tensor(1.0), atol=1e-5)
        assert amap.scores is not None and torch.isinf(amap.scores[~real[:, None, None, :].expand_as(w)]).all()
    assert (plain.hidden - got.hidden).abs()[real].max() < 1e-5
    del hf
