"""Read a llama.cpp GGUF file (Llama-style decoder) into a sesame model, plus a
``tokenizers`` tokenizer rebuilt from the byte-level BPE vocabulary it embeds.

Needs the optional ``gguf`` package, imported only when a file is read.
Quantized tensors are dequantized to fp32 with ``gguf.quants.dequantize``.

Three things differ from a Hugging Face checkpoint:

* shapes are in ggml order (fastest dimension first): a (out, in) weight is
  listed as ``[in, out]``; the tensor data itself is row-major (out, in);
* llama.cpp's converter permutes the rows of each head of ``attn_q``/``attn_k``
  so its interleaved-pair RoPE sees HF's half-split pairs; we undo it, since our
  rotary uses the half-split convention;
* there is no ``config.json``: the shape comes from ``llama.*`` metadata.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from sesame.config.model import ModelConfig
from sesame.errors import CheckpointError, ConversionError
from sesame.models.io import load_state, save_model
from sesame.models.model import build_model

ARCHITECTURES = ("llama",)

# tensor name in the file (after "blk.N.") -> our key (after "body.layers.N.")
LAYER_TENSORS = {
    "attn_norm": "attn_norm", "attn_output": "attn.out", "ffn_norm": "ffn_norm", "ffn_down": "ffn.down",
}
FUSED = {"attn.qkv": ("attn_q", "attn_k", "attn_v"), "ffn.up": ("ffn_gate", "ffn_up")}

# llama.cpp pre-tokenizer names -> how text is split before byte-level BPE
_DIGITS = ("smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva")
_LLAMA3 = ("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx", "falcon3")
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TOKEN_CONTROL, TOKEN_USER_DEFINED = 3, 4  # llama.cpp token types


def _gguf():
    try:
        import gguf
    except ImportError:
        raise ConversionError("reading GGUF files needs the optional `gguf` package: pip install gguf") from None
    return gguf


def open_gguf(path: str | Path):
    """A ``gguf.GGUFReader`` over the file (memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GGUF file {str(path)!r} does not exist")
    gguf = _gguf()
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable GGUF file ({err})") from None


def metadata(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


# ---- config ---------------------------------------------------------------
def _f32(value) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (1e-5, not 9.9999997e-06)."""
    return float(str(np.float32(value)))


def _per_model(value, key: str) -> int:
    """A count llama.cpp may store per layer; sesame needs one value for every layer."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ConversionError(f"GGUF {key} differs between layers ({value}); sesame needs one value")
        value = value[0]
    return int(value)


def config_from_gguf(reader) -> ModelConfig:
    arch = metadata(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ConversionError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
        )

    def get(key, default=None, required=False):
        value = metadata(reader, f"{arch}.{key}", default)
        if value is None and required:
            raise CheckpointError(f"GGUF file lacks the metadata key {arch}.{key}")
        return value

    if (get("expert_count") or 0) > 0:
        raise ConversionError("mixture-of-experts GGUF models are not supported")
    scaling = get("rope.scaling.type")
    if scaling not in (None, "none") and (get("rope.scaling.factor") or 1.0) != 1.0:
        raise ConversionError(f"RoPE scaling {scaling!r} is not supported: sesame implements plain RoPE only")
    hidden, heads = int(get("embedding_length", required=True)), int(get("attention.head_count", required=True))
    head_dim = int(get("attention.key_length") or hidden // heads)
    if int(get("rope.dimension_count") or head_dim) != head_dim:
        raise ConversionError("partial rotary embeddings (rope.dimension_count < head size) are not supported")
    embedding = _tensor(reader, "token_embd.weight")
    if embedding is None:
        raise CheckpointError("GGUF file lacks tensor 'token_embd.weight'")
    vocab = int(embedding.shape[-1])  # ggml order [hidden, vocab]; the token list may be shorter
    names = {t.name for t in reader.tensors}
    if "rope_freqs.weight" in names:
        raise ConversionError("per-frequency RoPE scaling (Llama 3.1 style rope_freqs) is not supported")
    return ModelConfig.from_dict(dict(
        family="llama", arch="decoder", vocab_size=int(vocab), hidden=hidden,
        layers=int(get("block_count", required=True)), num_heads=heads,
        num_kv_heads=_per_model(get("attention.head_count_kv") or heads, "attention.head_count_kv"),
        head_dim=head_dim if head_dim * heads != hidden else None,
        intermediate=int(get("feed_forward_length", required=True)),
        max_positions=int(get("context_length") or 2048), type_vocab_size=0, position="rotary",
        rope_theta=_f32(get("rope.freq_base") or 10000.0), norm="rmsnorm",
        norm_eps=_f32(get("attention.layer_norm_rms_epsilon") or 1e-5), prenorm=True,
        embedding_norm=False, final_norm=True, feedforward="glu", activation="silu",
        bias=any(n.endswith(".bias") for n in names), dropout=0.0, attention_dropout=0.0,
        heads=["lm"], tie_embeddings="output.weight" not in names,
        pad_token_id=int(metadata(reader, "tokenizer.ggml.padding_token_id", 0) or 0),
    ))


# ---- tensors --------------------------------------------------------------
def _tensor(reader, name: str):
    for t in reader.tensors:
        if t.name == name:
            return t
    return None


def dequantize(tensor) -> torch.Tensor:
    """A GGUF tensor as fp32 torch, in PyTorch (row-major) shape: ggml's shape reversed."""
    gguf = _gguf()
    try:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError as err:
        raise ConversionError(f"{tensor.name}: {err}") from None
    shape = tuple(int(n) for n in reversed(tensor.shape))
    data = np.asarray(data, dtype=np.float32)
    if data.size != int(np.prod(shape)):
        raise CheckpointError(f"{tensor.name}: {data.size} values do not fill shape {shape}")
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, dtype=np.float32, order="C")  # memory-mapped F32 data is read-only
    return torch.from_numpy(data.reshape(shape))


def unpermute_rope(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row permutation. Within each head it stores the row for
    (pair j, half s) at j*2 + s; HF (and sesame) keep it at s*D/2 + j."""
    d = w.shape[0] // heads
    return w.reshape(heads, d // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def state_from_gguf(reader, config: ModelConfig) -> dict[str, torch.Tensor]:
    tensors = {t.name: t for t in reader.tensors}

    def take(name: str, rows: int | None = None, rope_heads: int | None = None):
        if name not in tensors:
            if rows is not None and name.endswith(".bias"):
                return torch.zeros(rows)  # a missing bias is an exact zero
            raise CheckpointError(f"GGUF file lacks tensor {name!r}")
        value = dequantize(tensors.pop(name))
        return unpermute_rope(value, rope_heads) if rope_heads else value

    c = config
    d = c.dim_per_head
    state = {"body.embed.tokens.weight": take("token_embd.weight")}
    suffixes = ("weight", "bias") if c.bias else ("weight",)
    for i in range(c.layers):
        ours, theirs = f"body.layers.{i}", f"blk.{i}"
        for name, key in LAYER_TENSORS.items():
            state[f"{ours}.{key}.weight"] = take(f"{theirs}.{name}.weight")
            if c.bias and "norm" not in name:
                rows = c.hidden
                state[f"{ours}.{key}.bias"] = take(f"{theirs}.{name}.bias", rows)
        sizes = {"attn_q": (c.num_heads * d, c.num_heads), "attn_k": (c.kv_heads * d, c.kv_heads),
                 "attn_v": (c.kv_heads * d, None), "ffn_gate": (c.intermediate, None),
                 "ffn_up": (c.intermediate, None)}
        for key, parts in FUSED.items():
            for suffix in suffixes:
                state[f"{ours}.{key}.{suffix}"] = torch.cat([
                    take(f"{theirs}.{p}.{suffix}", sizes[p][0], sizes[p][1]) for p in parts
                ])
    state["body.final_norm.weight"] = take("output_norm.weight")
    if not c.tie_embeddings:
        state["heads.lm.decoder.weight"] = take("output.weight")
    extra = sorted(tensors)
    if extra:
        raise ConversionError(
            f"GGUF file has {len(extra)} tensors a Llama decoder does not use ({', '.join(extra[:5])}); "
            "it is not a plain Llama-style model"
        )
    return state


# ---- tokenizer ------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


def tokenizer_from_gguf(reader):
    """A ``tokenizers.Tokenizer`` from the embedded byte-level BPE vocabulary, or None
    (with a warning) when the file has no tokenizer or one of another kind."""
    kind = metadata(reader, "tokenizer.ggml.model")
    if kind is None:
        return None
    if kind != "gpt2":
        warnings.warn(f"GGUF tokenizer kind {kind!r} is not supported (only byte-level BPE, 'gpt2'); "
                      "no tokenizer written", stacklevel=2)
        return None
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens = list(metadata(reader, "tokenizer.ggml.tokens"))
    types = list(metadata(reader, "tokenizer.ggml.token_type", []) or [])
    merges = metadata(reader, "tokenizer.ggml.merges")
    if merges is None:
        warnings.warn("GGUF byte-level tokenizer has no merges; no tokenizer written", stacklevel=2)
        return None
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    special = {i for i, t in enumerate(types) if t in (TOKEN_CONTROL, TOKEN_USER_DEFINED)}
    vocab = {}
    for i, tok in enumerate(tokens):
        if i not in special and not set(tok) <= alphabet:  # respell a raw-text token in byte-level form
            tok = "".join(spelling[b] for b in tok.encode("utf-8"))
        vocab.setdefault(tok, i)
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], fuse_unk=False)
    tk = Tokenizer(bpe)
    pre = metadata(reader, "tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS:
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in _LLAMA3:
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        if pre not in ("default", "gpt2"):
            warnings.warn(f"GGUF pre-tokenizer {pre!r} is unknown to sesame; splitting text as GPT-2 does",
                          stacklevel=2)
        tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                           for i in sorted(special) if types[i] == TOKEN_CONTROL])
    tk.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                   for i in sorted(special) if types[i] == TOKEN_USER_DEFINED])
    bos = metadata(reader, "tokenizer.ggml.bos_token_id")
    if metadata(reader, "tokenizer.ggml.add_bos_token", False) and bos is not None:
        tk.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]}:0 $A:0", pair=f"{tokens[bos]}:0 $A:0 $B:1",
            special_tokens=[(tokens[bos], int(bos))],
        )
    else:
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    return tk


def tokenizer_config_from_gguf(reader) -> dict:
    """``tokenizer_config.json`` contents: special tokens, BOS/EOS flags, chat template."""
    tokens = metadata(reader, "tokenizer.ggml.tokens") or []
    out = {"tokenizer_class": "PreTrainedTokenizerFast"}
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
        index = metadata(reader, f"tokenizer.ggml.{key}")
        if index is not None and 0 <= int(index) < len(tokens):
            out[name] = tokens[int(index)]
    out["add_bos_token"] = bool(metadata(reader, "tokenizer.ggml.add_bos_token", False))
    out["add_eos_token"] = bool(metadata(reader, "tokenizer.ggml.add_eos_token", False))
    template = metadata(reader, "tokenizer.chat_template")
    if template:
        out["chat_template"] = template
    context = metadata(reader, f"{metadata(reader, 'general.architecture')}.context_length")
    if context:
        out["model_max_length"] = int(context)
    return out


# ---- entry points ---------------------------------------------------------
def load_gguf(path: str | Path):
    """``(Model, tokenizers.Tokenizer | None)`` from a Llama-style GGUF file, weights in fp32."""
    reader = open_gguf(path)
    config = config_from_gguf(reader)
    model = build_model(config)
    load_state(model, state_from_gguf(reader, config))
    model.eval()
    return model, tokenizer_from_gguf(reader)


def convert_gguf(path: str | Path, out: str | Path) -> Path:
    """Write a sesame model directory (config.toml, model.safetensors, tokenizer.json,
    tokenizer_config.json) from a GGUF file. What ``sesame convert --from-gguf`` calls."""
    reader = open_gguf(path)
    config = config_from_gguf(reader)
    model = build_model(config)
    load_state(model, state_from_gguf(reader, config))
    extra = {}
    tokenizer = tokenizer_from_gguf(reader)
    if tokenizer is not None:
        extra["tokenizer.json"] = tokenizer.to_str()
        extra["tokenizer_config.json"] = json.dumps(tokenizer_config_from_gguf(reader), indent=2)
    return save_model(model, out, extra=extra)
