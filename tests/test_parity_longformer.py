"""Hugging Face ``LongformerModel`` parity: the same weights and global mask give the
same hidden states (to 1e-4) with sliding windows shorter than the sequence, per-layer
windows, padding and global tokens; export and ``sesame convert`` round-trip."""
from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

import torch

from sesame.cli.main import main
from sesame.models.hf import from_hf, to_hf
from sesame.nn import Layout

TOL = 1e-4
VOCAB = 61
CONFIG = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=42, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
              attention_window=[4, 8])


def make_hf(cls_name, path, **extra):
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(transformers.LongformerConfig(**CONFIG, **extra))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval().save_pretrained(path)
    return model


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 17), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0
    mask[2, 6:] = 0
    ids[mask == 0] = 1
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, [7, 11]] = 1
    glob[2, 3] = 1
    return ids, mask, glob


def ours(model, ids, mask, glob):
    layout = Layout(key_padding=mask.bool(), global_mask=glob.bool())
    with torch.no_grad():
        return model(ids, mask, layout=layout)


def test_longformer_model_parity_with_global_tokens(tmp_path):
    hf = make_hf("LongformerForMaskedLM", tmp_path / "hf")
    model, report = from_hf(tmp_path / "hf")
    model.eval()
    assert model.config.family == "longformer" and model.config.attention_options["window"] == [4, 8]
    assert not report.missing and not report.unexpected, str(report)
    ids, mask, glob = batch()
    keep = mask.bool()
    for g in (glob, torch.zeros_like(glob)):
        with torch.no_grad():
            ref = hf(input_ids=ids, attention_mask=mask, global_attention_mask=g, output_hidden_states=True)
        out = ours(model, ids, mask, g)
        err = (out.hidden[keep] - ref.hidden_states[-1][keep]).abs().max().item()
        err_mlm = (out.logits["mlm"][keep] - ref.logits[keep]).abs().max().item()
        assert max(err, err_mlm) < TOL, (err, err_mlm)
    plain = model(ids, mask, global_mask=glob.bool()).logits["mlm"]  # the same through the global_mask argument
    assert torch.equal(plain, ours(model, ids, mask, glob).logits["mlm"])
    to_hf(model, tmp_path / "export")
    back = transformers.LongformerForMaskedLM.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        again = back(input_ids=ids, attention_mask=mask, global_attention_mask=glob).logits
    assert (again[keep] - ours(model, ids, mask, glob).logits["mlm"][keep]).abs().max() < TOL


def test_longformer_classifier_puts_global_attention_on_cls_and_convert_round_trips(tmp_path):
    hf = make_hf("LongformerForSequenceClassification", tmp_path / "hf", num_labels=3)
    ids, mask, _ = batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits  # HF: global attention on [CLS] by default
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), str(tmp_path / "sesame")]) == 0
    assert main(["convert", "--to-hf", str(tmp_path / "sesame"), str(tmp_path / "back")]) == 0
    model, _ = from_hf(tmp_path / "hf")
    model.eval()
    assert model.config.attention_options["global_positions"] == [0]
    with torch.no_grad():
        got = model(ids, mask).logits["classify"]
    assert (got - ref).abs().max() < TOL
    back = transformers.LongformerForSequenceClassification.from_pretrained(tmp_path / "back").eval()
    for key, value in hf.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key


def test_export_refuses_a_kernel_the_hf_architecture_does_not_compute(tmp_path):
    from sesame.config import ModelConfig
    from sesame.errors import ConversionError
    from sesame.models import build_model

    model = build_model(ModelConfig(family="bert", vocab_size=50, hidden=32, layers=1, num_heads=4,
                                    intermediate=48, attention="linear"))
    with pytest.raises(ConversionError, match="model.attention = 'linear'"):
        to_hf(model, tmp_path / "out")


def test_full_attention_refuses_a_global_mask():
    from sesame.config import ModelConfig
    from sesame.errors import ConfigError
    from sesame.models import build_model

    model = build_model(ModelConfig(vocab_size=50, hidden=32, layers=1, num_heads=4, intermediate=48))
    ids = torch.randint(0, 50, (1, 6))
    with pytest.raises(ConfigError, match="cannot honour global"):
        model(ids, global_mask=torch.ones(1, 6, dtype=torch.bool))
