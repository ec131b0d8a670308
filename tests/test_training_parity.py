"""Training matches the reference: from the same weights, with the same batches and
optimizer, our models' losses and updated weights follow `transformers`' step by step."""
import pytest
import torch

from sesame.models.hf import from_hf, state_to_hf
from sesame.config import get

transformers = pytest.importorskip("transformers")


def run_steps(model, loss_fn, batches, lr=1e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    for batch in batches:
        loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_losses_and_weights_follow_transformers(family, tmp_path):
    torch.manual_seed(0)
    if family == "bert":
        cfg = transformers.BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)
        hf = transformers.BertForMaskedLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=200, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        hf = transformers.GPT2LMHeadModel(cfg)
    hf.save_pretrained(tmp_path)
    ours, _ = from_hf(tmp_path)
    gen = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(6):
        ids = torch.randint(5, 200, (4, 24), generator=gen)
        labels = torch.where(torch.rand(4, 24, generator=gen) < 0.3, ids, torch.full_like(ids, -100))
        batches.append((ids, labels))

    def hf_loss(model, batch):
        ids, labels = batch
        return model(input_ids=ids, labels=labels if family == "bert" else ids).loss

    def our_loss(model, batch):
        ids, labels = batch
        if family == "bert":
            select = labels != -100
            logits = model(ids, select=select).logits["mlm"]
            return torch.nn.functional.cross_entropy(logits, labels[select])
        logits = model(ids).logits["lm"]
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())

    hf.train()
    ours.train()
    theirs = run_steps(hf, hf_loss, batches)
    mine = run_steps(ours, our_loss, batches)
    assert max(abs(a - b) for a, b in zip(theirs, mine)) < 1e-5, (theirs, mine)
    assert mine[-1] < mine[0]
    fam = get("family", family)
    after = state_to_hf(ours, fam)
    ref = hf.state_dict()
    worst = max((after[k] - ref[k]).abs().max().item() for k in after if k in ref)
    assert worst < 1e-5, worst
