"""Generation over a Transformer-XL recurrence memory: with a memory covering the whole
context it equals decoding by full forward passes; beam search reorders the memory; a
bounded memory stays bounded."""
from __future__ import annotations

import pytest
import torch

from sesame.config.model import ModelConfig
from sesame.errors import ConfigError
from sesame.generate import generate
from sesame.models import build_model
from sesame.nn.cache import Memory

V = 41


def xl_model(mem_len=64, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict(dict(arch="decoder", heads=["lm"], vocab_size=V, hidden=16, num_heads=2, layers=2,
                                     intermediate=24, position="none", attention="xl", type_vocab_size=0,
                                     dropout=0.0, attention_dropout=0.0, mem_len=mem_len, init_std=0.5))
    return build_model(cfg).eval()


def prompts():
    ids = torch.randint(1, V, (3, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    mask[2, :5] = 0
    return ids.masked_fill(mask == 0, 0), mask


def spy(model, monkeypatch):
    made = []
    real = model.new_memory
    monkeypatch.setattr(model, "new_memory", lambda n=None: made.append(real(n)) or made[-1])
    return made


def test_greedy_over_a_covering_memory_equals_full_forward_passes(monkeypatch):
    model = xl_model(mem_len=64)
    made = spy(model, monkeypatch)
    ids, mask = prompts()
    out = generate(model, ids, mask, strategy="greedy", max_new_tokens=10, keep_logits=True)
    assert len(made) == 1 and isinstance(made[0], Memory) and made[0].length == 7 + 9  # the memory was used
    seq, m = ids, mask
    with torch.no_grad():
        for step in range(10):
            logits = model(seq, m).logits["lm"][:, -1]
            assert torch.allclose(out.step_logits[step], logits, atol=1e-5), step
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
            m = torch.cat([m, torch.ones_like(m[:, :1])], 1)
    assert torch.equal(out.sequences, seq)


def test_a_bounded_memory_stays_bounded_and_is_used(monkeypatch):
    model = xl_model(mem_len=4)
    made = spy(model, monkeypatch)
    ids, mask = prompts()
    short = generate(model, ids, mask, max_new_tokens=12, keep_logits=True)
    assert made[0].mem_len == 4 and all(layer.h.shape[1] == 4 for layer in made[0].layers)
    full = generate(model, ids, mask, max_new_tokens=12, keep_logits=True, mem_len=64)
    assert made[1].mem_len == 64  # generate.mem_len overrides model.mem_len
    assert torch.allclose(short.step_logits[0], full.step_logits[0], atol=1e-5)  # the prompt is one segment
    # 4 states < the context: later steps see less (tiny random model: logits ~0.1, float noise ~1e-7)
    assert (short.step_logits[-1] - full.step_logits[-1]).abs().max() > 1e-4


def test_beam_search_reorders_the_memory(monkeypatch):
    model = xl_model(mem_len=64)
    calls = []
    real = Memory.reorder
    monkeypatch.setattr(Memory, "reorder", lambda self, index: (calls.append(index.clone()), real(self, index)))
    ids, mask = prompts()
    beam = generate(model, ids, mask, strategy="beam", num_beams=3, max_new_tokens=6, length_penalty=0.0)
    assert calls and any(not torch.equal(c, torch.arange(len(c))) for c in calls)  # beams did swap rows
    kv = xl_model(mem_len=0)  # same weights, decoded over the KV cache (exact, full context)
    kv.load_state_dict(model.state_dict())
    ref = generate(kv, ids, mask, strategy="beam", num_beams=3, max_new_tokens=6, length_penalty=0.0)
    assert beam.new_tokens == ref.new_tokens and torch.allclose(beam.scores, ref.scores, atol=1e-5)
    # a beam's best continuation's log-probability, recomputed by full forward passes
    with torch.no_grad():
        for row in range(ids.shape[0]):
            seq, m = ids[row:row + 1], mask[row:row + 1]
            total = 0.0
            for token in beam.new_tokens[row]:
                total += model(seq, m).logits["lm"][0, -1].log_softmax(-1)[token].item()
                seq = torch.cat([seq, torch.tensor([[token]])], 1)
                m = torch.cat([m, torch.ones_like(m[:, :1])], 1)
            assert abs(total - beam.scores[row].item()) < 1e-4


def test_mem_len_on_a_model_without_xl_attention_is_refused():
    torch.manual_seed(0)
    gpt = build_model(ModelConfig.from_dict(dict(arch="decoder", heads=["lm"], vocab_size=V, hidden=16, num_heads=2,
                                                 layers=1, intermediate=24, max_positions=32))).eval()
    with pytest.raises(ConfigError, match="mem_len"):
        generate(gpt, torch.ones(1, 3, dtype=torch.long), mem_len=8)
    with pytest.raises(ConfigError, match="mem_len"):
        generate(gpt, torch.ones(1, 3, dtype=torch.long), mem_len=-1)


def test_text_generation_pipeline_and_cli_on_a_transformer_xl_model(tmp_path, capsys):
    from sesame.cli.main import main
    from sesame.models import save_model
    from sesame.pipelines import pipeline
    from sesame.tokenize import load_tokenizer

    words = "the a cat dog sat ran on under mat rug and then it was big small".split()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = load_tokenizer(tmp_path / "vocab.txt")
    model = xl_model(mem_len=64)
    model = build_model(model.config.replace(vocab_size=tok.vocab_size))
    save_model(model, tmp_path / "xl", extra={"tokenizer.json": tok.to_json()})
    gen = pipeline("text-generation", tmp_path / "xl")
    out = gen("the cat sat", max_new_tokens=5)
    ids = tok.encode("the cat sat").ids
    start = len(ids)
    for _ in range(5):  # greedy by hand: full forward passes
        with torch.no_grad():
            nxt = int(gen.model(torch.tensor([ids])).logits["lm"][0, -1].argmax())
        if nxt == tok.eos_id:
            break
        ids.append(nxt)
    assert out == tok.decode(ids[start:]) and out
    assert isinstance(gen("the cat sat", max_new_tokens=5, mem_len=2), str)  # a bounded memory, via the options
    assert main(["generate", str(tmp_path / "xl"), "the dog", "--max-new-tokens", "4", "--mem-len", "2"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["generate", str(tmp_path / "xl"), "the dog", "--mem-len", "-1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: generate.mem_len must be >= 0")
