"""XLNet against transformers' XLNetModel / XLNetLMHeadModel with the same weights: plain
encoding with padding and token types, the permutation LM's perm_mask + target_mapping
(the query stream), and mems (segment recurrence); export and reload; convert round trip."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from sesame.models.hf import convert_from_hf, convert_to_hf, from_hf, to_hf  # noqa: E402
from sesame.nn.attention.two_stream import stream_layouts  # noqa: E402

V, TOL = 61, 1e-4
CFG = dict(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=37, mem_len=16, pad_token_id=0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch.manual_seed(0)
    hf = transformers.XLNetLMHeadModel(transformers.XLNetConfig(**CFG))
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    hf.eval()
    path = tmp_path_factory.mktemp("xlnet")
    hf.save_pretrained(path)
    ours, report = from_hf(path)
    assert not report.missing and not report.unexpected, str(report)
    assert ours.config.heads == ["lm"] and ours.config.family == "xlnet"
    return hf, ours.eval(), path


def _inputs(b=3, t=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (b, t), generator=g)
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    types[:, -1] = 2  # XLNet's [CLS] segment
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # XLNet pads on the left
    return ids, types, mask


def _perm(b, t, seed=2):
    """A random factorisation order per row, as HF's perm_mask (1: may not attend), and a
    target mapping of the last 3 positions in the order."""
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(t, generator=g) for _ in range(b)])  # rank of each position
    perm_mask = (order[:, None, :] >= order[:, :, None]).float()  # i may see j iff rank(j) < rank(i)
    targets = order.argsort(-1)[:, -3:]  # the positions predicted last
    tm = torch.nn.functional.one_hot(targets, t).float()
    return perm_mask, tm


def test_plain_forward_with_padding_and_types(pair):
    hf, ours, _ = pair
    ids, types, mask = _inputs()
    with torch.no_grad():
        theirs = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        content, _ = stream_layouts(None, mask)
        mine = ours(ids, token_type_ids=types, layout=content)
    keep = mask.bool()
    assert (mine.hidden[keep] - theirs.hidden_states[-1][keep]).abs().max() < TOL
    assert (mine.logits["lm"][keep] - theirs.logits[keep]).abs().max() < TOL


def test_query_stream_with_perm_mask_and_target_mapping(pair):
    hf, ours, _ = pair
    ids, types, mask = _inputs()
    perm_mask, tm = _perm(*ids.shape)
    with torch.no_grad():
        theirs = hf(ids, attention_mask=mask, token_type_ids=types, perm_mask=perm_mask, target_mapping=tm)
        content, query = stream_layouts(perm_mask, mask)
        mine = ours(ids, token_type_ids=types, layout=content, query_layout=query, target_mapping=tm)
    assert mine.logits["lm"].shape == theirs.logits.shape == (3, 3, V)
    assert (mine.logits["lm"] - theirs.logits).abs().max() < TOL


def test_bi_data_backward_stream_negates_distances_as_hf(pair):
    """HF's bi_data: the first half of the batch forward, the second half with negated
    relative distances; ours marks those rows ``Layout.backward``."""
    import dataclasses

    hf, ours, _ = pair
    ids, types, mask = _inputs(b=4)
    perm_mask, tm = _perm(4, ids.shape[1])
    backward = torch.tensor([False, False, True, True])
    hf.transformer.bi_data = True
    try:
        with torch.no_grad():
            theirs = hf(ids, attention_mask=mask, token_type_ids=types, perm_mask=perm_mask, target_mapping=tm)
            plain = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    finally:
        hf.transformer.bi_data = False
    content, query = (dataclasses.replace(x, backward=backward) for x in stream_layouts(perm_mask, mask))
    with torch.no_grad():
        mine = ours(ids, token_type_ids=types, layout=content, query_layout=query, target_mapping=tm)
        hidden = ours(ids, token_type_ids=types, layout=dataclasses.replace(stream_layouts(None, mask)[0],
                                                                            backward=backward)).hidden
        forward = ours(ids, token_type_ids=types, layout=content, query_layout=query, target_mapping=tm)
    assert (mine.logits["lm"] - theirs.logits).abs().max() < TOL
    keep = mask.bool()
    assert (hidden[keep] - plain.hidden_states[-1][keep]).abs().max() < TOL
    unmarked = ours(ids, token_type_ids=types, layout=stream_layouts(perm_mask, mask)[0],
                    query_layout=stream_layouts(perm_mask, mask)[1], target_mapping=tm).logits["lm"]
    assert (unmarked[:2] - forward.logits["lm"][:2]).abs().max() < TOL  # forward rows as without bi_data
    assert (unmarked[2:] - forward.logits["lm"][2:]).abs().max() > 1e-3  # backward rows differ


def test_mems_segment_recurrence(pair):
    hf, ours, _ = pair
    ids, types, _ = _inputs(t=14)
    first, second = ids[:, :8], ids[:, 8:]
    with torch.no_grad():
        out1 = hf(first, token_type_ids=types[:, :8], use_mems=True)
        out2 = hf(second, token_type_ids=types[:, 8:], mems=out1.mems, use_mems=True)
        memory = ours.new_memory()
        ours(first, token_type_ids=types[:, :8], cache=memory)
        for layer, theirs in zip(memory.layers, out1.mems):  # HF mems are (T, B, d)
            assert (layer.h - theirs.transpose(0, 1)).abs().max() < TOL
        mine = ours(second, token_type_ids=types[:, 8:], cache=memory)
        # with memory and the query stream together
        perm_mask, tm = _perm(3, 6)
        out3 = hf(second, token_type_ids=types[:, 8:], mems=out1.mems, perm_mask=perm_mask, target_mapping=tm)
        memory = ours.new_memory()
        ours(first, token_type_ids=types[:, :8], cache=memory)
        content, query = stream_layouts(perm_mask, None, mem=8)
        mine3 = ours(second, token_type_ids=types[:, 8:], cache=memory, layout=content, query_layout=query,
                     target_mapping=tm)
    assert (mine.logits["lm"] - out2.logits).abs().max() < TOL
    assert (mine3.logits["lm"] - out3.logits).abs().max() < TOL


def test_export_reload_and_round_trip(pair, tmp_path):
    hf, ours, path = pair
    to_hf(ours, tmp_path / "export")
    back, info = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "export", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, types, mask = _inputs()
    perm_mask, tm = _perm(*ids.shape)
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, token_type_ids=types, perm_mask=perm_mask, target_mapping=tm).logits
        b = back.eval()(ids, attention_mask=mask, token_type_ids=types, perm_mask=perm_mask, target_mapping=tm).logits
    assert (a - b).abs().max() < TOL
    convert_from_hf(path, tmp_path / "ours")
    convert_to_hf(tmp_path / "ours", tmp_path / "back")
    again = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "back")
    for (k, x), y in zip(hf.state_dict().items(), again.state_dict().values()):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("cls,heads,attr", [("XLNetForSequenceClassification", ["pooler", "classify"], "classify"),
                                            ("XLNetForTokenClassification", ["tag"], "tag")])
def test_classify_and_tag_heads(cls, heads, attr, tmp_path):
    """A [SEP] B [SEP] [CLS] with the classification token last (left padding keeps it real)."""
    torch.manual_seed(1)
    hf = getattr(transformers, cls)(transformers.XLNetConfig(**CFG, num_labels=3))
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    hf.eval().save_pretrained(tmp_path / "hf")
    ours, report = from_hf(tmp_path / "hf")
    assert not report.missing and not report.unexpected, str(report)
    assert ours.config.heads == heads and ours.config.num_labels == 3
    ids, types, mask = _inputs()
    with torch.no_grad():
        theirs = hf(ids, attention_mask=mask, token_type_ids=types).logits
        content, _ = stream_layouts(None, mask)
        mine = ours.eval()(ids, token_type_ids=types, layout=content).logits[attr]
    if attr == "tag":
        mine, theirs = mine[mask.bool()], theirs[mask.bool()]
    assert (mine - theirs).abs().max() < TOL
    to_hf(ours, tmp_path / "export")
    _, info = getattr(transformers, cls).from_pretrained(tmp_path / "export", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info

