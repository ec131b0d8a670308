"""Hugging Face interop: convert a HF model directory (``config.json`` +
``model.safetensors`` + tokenizer files) to sesame's format and back.

A family declares key rules. A rule maps one of our keys to one or more HF keys
(several are concatenated along dim 0, e.g. separate q/k/v into our fused qkv),
optionally transposed (GPT-2's Conv1D). Body rules may carry the HF base-model
prefix or not; head rules never do. HF weights are read from safetensors only:
nothing is unpickled."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from sesame.config.model import ModelConfig
from sesame.config.registry import get, names
from sesame.errors import CheckpointError, ConversionError
from sesame.models.io import LoadReport, atomic_dir, load_model, load_state, read_weights, save_model
from sesame.models.model import Model, build_model

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "added_tokens.json",
)


@dataclasses.dataclass
class Rule:
    ours: str
    theirs: tuple[str, ...]
    op: str = "copy"  # copy | t (transpose a 2-D weight) | row (HF keeps a vector as (1, N))
    base: bool = True  # HF key sits under the base-model prefix
    sizes: tuple[int, ...] | None = None  # split sizes when several HF tensors are concatenated
    to_ours: Callable | None = None  # per HF tensor, before concatenating (e.g. XLNet's (d, n, dh) heads)
    to_theirs: Callable | None = None  # its inverse, per part on export


def rule(ours: str, *theirs: str, op: str = "copy", base: bool = True, sizes=None, to_ours=None,
         to_theirs=None) -> Rule:
    return Rule(ours, tuple(theirs), op, base, tuple(sizes) if sizes else None, to_ours, to_theirs)


def linear(ours: str, theirs: str, bias: bool = True, base: bool = True, op: str = "copy") -> list[Rule]:
    """Rules for a linear/norm layer's weight (and bias)."""
    out = [rule(f"{ours}.weight", f"{theirs}.weight", op=op, base=base)]
    if bias:
        out.append(rule(f"{ours}.bias", f"{theirs}.bias", base=base))
    return out


def fused(ours: str, theirs: list[str], sizes, bias: bool = True, base: bool = True) -> list[Rule]:
    """Our fused projection = HF's separate projections stacked along the output dim."""
    out = [rule(f"{ours}.weight", *[f"{t}.weight" for t in theirs], sizes=sizes, base=base)]
    if bias:
        out.append(rule(f"{ours}.bias", *[f"{t}.bias" for t in theirs], sizes=sizes, base=base))
    return out


@dataclasses.dataclass
class Family:
    """What sesame needs to know to import/export one HF architecture."""

    name: str
    model_types: tuple[str, ...]
    prefix: str  # HF base-model prefix, e.g. "bert."
    config_from_hf: Callable[[dict], ModelConfig]
    config_to_hf: Callable[[ModelConfig], dict]
    body_rules: Callable[[ModelConfig], list[Rule]]
    head_rules: Callable[[ModelConfig], dict[str, list[Rule]]]  # per head, in a sensible order
    architecture: Callable[[list[str]], str]  # HF class name for a set of heads
    ignore: tuple[str, ...] = (r".*position_ids$", r".*\.masked_bias$", r".*\.attn\.bias$")
    attention: tuple[str, ...] = ("full",)  # the attention kernels its HF architecture computes
    adjust: Callable[[ModelConfig, dict], ModelConfig] | None = None  # config facts only the weights tell


def family_for(model_type: str) -> Family:
    for name in names("family"):
        fam = get("family", name)
        if model_type in fam.model_types:
            return fam
    known = sorted(t for n in names("family") for t in get("family", n).model_types)
    raise ConversionError(
        f"cannot convert Hugging Face model_type {model_type!r}; supported: {', '.join(known)}"
    )


def _ignored(key: str, fam: Family) -> bool:
    return any(re.fullmatch(p, key) for p in fam.ignore)


def _read_hf(src: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not src.is_dir():
        raise CheckpointError(f"{str(src)!r} is not a directory; give a Hugging Face model directory")
    cfg_file = src / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{str(src)!r} has no config.json, so it is not a Hugging Face model directory")
    try:
        hf_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ConversionError(f"{cfg_file} is not valid JSON ({err}); restore the model's config.json") from None
    if not isinstance(hf_cfg, dict) or not isinstance(hf_cfg.get("model_type", ""), str):
        raise ConversionError(f"{cfg_file} is malformed: expected a JSON object with a string model_type")
    files = sorted(src.glob("*.safetensors"))
    if not files:
        bins = list(src.glob("*.bin"))
        hint = (" (it has PyTorch .bin weights, which sesame never unpickles: re-save them as safetensors)"
                if bins else "")
        raise CheckpointError(f"{str(src)!r} has no .safetensors weights{hint}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(read_weights(f))
    return hf_cfg, state


def _lookup(state: dict, key: str, fam: Family, base: bool) -> str | None:
    candidates = [fam.prefix + key, key] if base else [key]
    return next((c for c in candidates if c in state), None)


def state_from_hf(hf_cfg: dict, state: dict[str, torch.Tensor], fam: Family, heads: list[str] | None = None):
    """Map a HF state dict to (ModelConfig, our state, renamed pairs, unused HF keys)."""
    try:
        config = fam.config_from_hf(hf_cfg)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a field missing or of the wrong type
        raise ConversionError(f"config.json is malformed for a {fam.name} model: {type(err).__name__} {err}; "
                              "restore the model's config.json") from None
    if fam.adjust is not None:
        config = fam.adjust(config, state)
    head_rules = fam.head_rules(config)
    if heads is None:  # keep the heads whose weights are present
        heads = [
            h for h, rules in head_rules.items()
            if rules and all(_lookup(state, t, fam, r.base) for r in rules[:1] for t in r.theirs)
        ]
    config = config.replace(heads=heads, num_labels=_num_labels(state, config, fam, head_rules, heads))
    ours: dict[str, torch.Tensor] = {}
    renamed, used = [], set()
    rules = fam.body_rules(config) + [r for h in heads for r in head_rules.get(h, [])]
    for r in rules:
        keys = [_lookup(state, t, fam, r.base) for t in r.theirs]
        if any(k is None for k in keys):
            continue  # reported as missing by load_state
        tensors = [state[k] if r.to_ours is None else r.to_ours(state[k]) for k in keys]
        value = torch.cat(tensors, 0) if len(tensors) > 1 else tensors[0]
        if r.op == "t":
            value = value.t()
        elif r.op == "row":  # a (1, N) HF tensor (BART's final_logits_bias) is our (N,) vector
            value = value.reshape(-1)
        ours[r.ours] = value.contiguous()
        used.update(keys)
        renamed.append((",".join(keys), r.ours))
    unused = [k for k in state if k not in used and not _ignored(k, fam)]
    return config, ours, renamed, unused


def _num_labels(state, config, fam, head_rules, heads) -> int:
    if "classify" in heads:
        first = head_rules["classify"][0]
        key = _lookup(state, first.theirs[0], fam, first.base)
        return int(state[key].shape[0 if first.op == "copy" else 1])
    return config.num_labels


def from_hf(src: str | Path, heads: list[str] | None = None, allow_missing: bool = False) -> tuple[Model, LoadReport]:
    """Build a sesame model from a Hugging Face directory."""
    src = Path(src)
    hf_cfg, state = _read_hf(src)
    fam = family_for(hf_cfg.get("model_type", ""))
    config, ours, renamed, unused = state_from_hf(hf_cfg, state, fam, heads)
    model = build_model(config)
    report = load_state(model, ours, allow_missing=allow_missing, strict=True, renamed=renamed)
    report.unexpected = unused  # HF tensors no rule used (reported, not fatal: e.g. a head we do not build)
    return model, report


def state_to_hf(model: Model, fam: Family) -> dict[str, torch.Tensor]:
    config = model.config
    state = dict(model.state_dict())
    head_rules = fam.head_rules(config)
    rules = fam.body_rules(config) + [r for h in config.heads for r in head_rules.get(h, [])]
    if "pooler" in head_rules and "pooler" in model.heads and "pooler" not in config.heads:
        rules += head_rules["pooler"]
    out: dict[str, torch.Tensor] = {}
    for r in rules:
        if r.ours not in state:
            continue
        value = state[r.ours]
        if r.op == "t":
            value = value.t()
        elif r.op == "row":
            value = value.reshape(1, -1)
        parts = value.split(list(r.sizes), 0) if r.sizes else [value]
        if len(parts) != len(r.theirs):
            raise ConversionError(f"cannot split {r.ours} into {len(r.theirs)} tensors")
        for key, part in zip(r.theirs, parts):
            part = part if r.to_theirs is None else r.to_theirs(part)
            out[(fam.prefix if r.base else "") + key] = part.detach().clone().contiguous()
    return out


def to_hf(model: Model, out: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Write a HF directory (config.json, model.safetensors, tokenizer files)."""
    out = Path(out)
    fam = get("family", model.config.family) if model.config.family in names("family") else None
    if fam is None:
        raise ConversionError(
            f"model.family = {model.config.family!r} has no Hugging Face counterpart; "
            f"exportable families: {', '.join(names('family'))}"
        )
    if model.config.attention not in fam.attention:
        raise ConversionError(
            f"Hugging Face's {fam.name} computes {' or '.join(fam.attention)} attention, but this model uses "
            f"model.attention = {model.config.attention!r}; the export would not compute what the model does"
        )
    if model.config.head_counts is not None:
        raise ConversionError(
            f"this model has pruned attention heads (model.head_counts = {model.config.head_counts}), and "
            "transformers 5 removed head pruning (no config.pruned_heads, no prune_heads): its models build "
            "num_attention_heads heads in every layer, so the export could not compute what this model does; "
            "keep it in sesame's format"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as tmp:
        hf_cfg = fam.config_to_hf(model.config)
        hf_cfg["architectures"] = [fam.architecture(list(model.config.heads))]
        if model.config.arch == "encoder-decoder" and tokenizer_dir is not None:
            hf_cfg.update({k: v for k, v in seq2seq_special_ids(Path(tokenizer_dir)).items() if k in hf_cfg})
        (tmp / "config.json").write_text(json.dumps(hf_cfg, indent=2))
        save_file(state_to_hf(model, fam), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer_dir is not None:
            copy_tokenizer(Path(tokenizer_dir), tmp)
    return out


SPECIAL_NAMES = {"pad_token_id": ("<pad>", "[PAD]"), "bos_token_id": ("<s>", "[CLS]"),
                 "eos_token_id": ("</s>", "[SEP]")}


def seq2seq_special_ids(tokenizer_dir: Path) -> dict[str, int]:
    """An exported encoder-decoder names its tokenizer's pad/bos/eos ids and starts decoding
    where sesame does (bos, else pad as T5), so transformers' ``generate`` matches ours."""
    path = tokenizer_dir / "tokenizer.json"
    if not path.is_file():
        return {}
    added = {t["content"]: t["id"] for t in json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])}
    out = {}
    for key, candidates in SPECIAL_NAMES.items():
        found = next((added[c] for c in candidates if c in added), None)
        if found is not None:
            out[key] = found
    start = out.get("bos_token_id", out.get("pad_token_id"))
    if start is not None:
        out["decoder_start_token_id"] = start
    return out


def copy_tokenizer(src: Path, dst: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied


def convert_from_hf(src, out, allow_missing: bool = False) -> LoadReport:
    model, report = from_hf(src, allow_missing=allow_missing)
    save_model(model, out)
    copy_tokenizer(Path(src), Path(out))
    return report


def convert_to_hf(src, out) -> Path:
    model, _ = load_model(src)
    return to_hf(model, out, tokenizer_dir=src)
