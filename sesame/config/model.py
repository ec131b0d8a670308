"""The model section: one config describes any encoder, decoder or encoder-decoder."""
from __future__ import annotations

import dataclasses
from typing import Any

from sesame.config.base import Section, choice
from sesame.errors import ConfigError

ARCHS = ("encoder", "decoder", "encoder-decoder", "bilm", "static")  # bilm: ELMo; static: a vectors table
POSITIONS = ("learned", "sinusoidal", "rotary", "t5", "alibi", "none", "shaw")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
FEEDFORWARDS = ("mlp", "glu")
INITS = ("normal", "t5")
HEADS = ("mlm", "lm", "pooler", "nsp", "sop", "classify", "rtd", "tag", "span", "choice", "sbo", "bilm")
TOKEN_ENCODERS = ("char-cnn", "embedding")
TASK_ENCODERS = ("none", "bilstm", "bag")
ELMO_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
# Transformer settings a biLM or a static table has no use for: asking for one fails at build time
NOT_FOR_LSTM = ("attention", "attention_options", "reversible", "ff_chunks", "adapter_size", "two_stream", "mem_len",
                "clamp_len", "relative_segments", "head_counts", "layerdrop", "share_layers", "num_kv_heads",
                "head_dim", "prenorm", "feedforward", "embedding_size", "attention_scale", "init")


@dataclasses.dataclass
class ModelConfig(Section):
    """Shape and parts of a Transformer. ``heads`` lists the output heads to build."""

    SECTION = "model"
    family: str = "custom"  # bert, roberta, albert, distilbert, electra, gpt2, llama, t5, bart, custom
    arch: str = "encoder"
    vocab_size: int = 30522
    hidden: int = 768
    layers: int = 12
    num_heads: int = 12
    num_kv_heads: int | None = None  # grouped-query attention; default num_heads
    head_dim: int | None = None  # default hidden // num_heads
    intermediate: int = 3072
    embedding_size: int | None = None  # factorised embedding E < H (ALBERT, ELECTRA)
    max_positions: int = 512
    type_vocab_size: int = 2  # 0: no segment embedding
    position: str = "learned"
    position_offset: int = 0  # RoBERTa's table starts at padding_idx + 1
    rope_theta: float = 10000.0
    relative_buckets: int = 32  # T5 bias
    relative_max_distance: int = 128  # T5 buckets; shaw: the clipping distance k (table of 2k+1)
    relative_values: bool = False  # shaw: relative vectors on the values too (Shaw et al.)
    relative_key_query: bool = False  # shaw: also the key-side term (HF "relative_key_query")
    mem_len: int = 0  # Transformer-XL recurrence: hidden states kept per layer (model.new_memory); needs attention 'xl'
    clamp_len: int = 0  # xl: clip relative distances at this value; 0: no clipping
    relative_segments: bool = False  # xl: XLNet's relative segment encoding (s+/s- and their bias)
    norm: str = "layernorm"
    norm_eps: float = 1e-12
    prenorm: bool = False
    embedding_norm: bool = True  # norm after the embeddings (BERT family)
    final_norm: bool | None = None  # default: prenorm
    activation: str = "gelu"
    feedforward: str = "mlp"
    attention: str = "full"
    attention_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # the kernel's own table (strict keys)
    reversible: bool = False  # reversible residual layers (Reformer): activations do not grow with depth
    ff_chunks: int = 0  # feed-forward over this many slices of the sequence; 0 or 1: whole
    attention_scale: float | None = None  # default 1/sqrt(head_dim); T5 uses 1.0
    bias: bool = True
    attention_bias: bool | None = None  # biases of the attention projections; default: bias (XLNet: none)
    two_stream: bool = False  # XLNet: a query stream (permutation LM) beside the content stream
    pool_last: bool = False  # the pooler reads the last token (XLNet's A [SEP] B [SEP] [CLS]), not the first
    dropout: float = 0.1
    attention_dropout: float = 0.1
    share_layers: bool = False  # ALBERT cross-layer parameter sharing
    adapter_size: int = 0  # bottleneck adapters after attention and feed-forward; 0: none
    scalar_mix: bool = False  # heads read an ELMo-style learned mix of all layers (encoders)
    scalar_mix_norm: bool = False  # layer-normalise each layer before the mix (Peters et al. 2018, sec. 3.2)
    decoder_layers: int | None = None  # encoder-decoder: default = layers
    heads: list[str] = dataclasses.field(default_factory=lambda: ["mlm"])
    num_labels: int = 2  # for the `classify` head
    tie_embeddings: bool = True
    lm_rescale: bool = False  # T5: scale the decoder output by hidden ** -0.5 before the LM head
    lm_bias: bool = False  # a bias on the LM logits (BART's final_logits_bias)
    pad_token_id: int = 0
    init_std: float = 0.02
    init: str = "normal"  # normal: N(0, init_std) everywhere; t5: T5's per-weight scaled normal (families/t5.py)
    head_counts: list[int] | None = None  # attention heads per layer after head pruning; default num_heads each
    layerdrop: float = 0.0  # LayerDrop: chance a whole layer is skipped in training (Fan et al.); 0: never
    # arch = "bilm" (ELMo): hidden = forward + backward width, intermediate = LSTM cell, layers = LSTM depth
    token_encoder: str = "char-cnn"  # char-cnn (characters -> CNN -> highway -> projection) | embedding
    char_dim: int = 16
    char_filters: list[list[int]] = dataclasses.field(default_factory=lambda: [list(f) for f in ELMO_FILTERS])
    highway_layers: int = 2
    max_characters: int = 50  # bytes per token, begin/end marks included
    # the task model above the features (the mix, or the top layer): none (the head reads them) |
    # bilstm (a BiLSTM of task_hidden units per direction) | bag (the mean of the vectors)
    task_encoder: str = "none"
    task_hidden: int = 128
    task_embedding: int = 0  # the task's own token embedding, concatenated with the features (0: none)
    task_dropout: float = 0.1  # dropout in the task encoder (its input, states and sentence vector)

    def validate(self) -> None:
        choice("model.arch", self.arch, ARCHS)
        choice("model.position", self.position, POSITIONS)
        choice("model.norm", self.norm, NORMS)
        choice("model.activation", self.activation, ACTIVATIONS)
        choice("model.feedforward", self.feedforward, FEEDFORWARDS)
        choice("model.init", self.init, INITS)
        for head in self.heads:
            choice("model.heads[]", head, HEADS)
        for name in ("vocab_size", "hidden", "layers", "num_heads", "intermediate", "max_positions"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.head_dim is None and self.hidden % self.num_heads and self.arch not in ("bilm", "static"):
            raise ConfigError(
                f"model.num_heads = {self.num_heads} does not divide model.hidden = {self.hidden}; "
                "pick a head count that divides the hidden size, or set model.head_dim"
            )
        if self.num_heads % self.kv_heads:
            raise ConfigError(
                f"model.num_kv_heads = {self.kv_heads} must divide model.num_heads = {self.num_heads}"
            )
        if self.adapter_size < 0:
            raise ConfigError("model.adapter_size must be 0 (no adapters) or positive")
        if self.scalar_mix and self.arch not in ("encoder", "bilm"):
            raise ConfigError("model.scalar_mix (a learned mix of all layers) is for encoders and biLMs; "
                              f"the model is {self.arch!r}")
        if self.scalar_mix_norm and not self.scalar_mix:
            raise ConfigError("model.scalar_mix_norm normalises the layers of the scalar mix; set scalar_mix = true")
        self._validate_lstm()
        if self.embedding_size is not None and self.embedding_size <= 0:
            raise ConfigError("model.embedding_size must be positive")
        if self.arch == "decoder" and any(h in self.heads for h in ("mlm", "nsp", "sop", "pooler")):
            raise ConfigError(
                f"model.heads {self.heads} need a bidirectional encoder but model.arch = 'decoder'; "
                "use heads = ['lm'] or arch = 'encoder'"
            )
        if self.two_stream and (self.arch != "encoder" or self.attention != "xl"):
            raise ConfigError("model.two_stream (XLNet's query stream) needs arch = 'encoder' and attention = 'xl'")
        if self.two_stream and self.adapter_size:
            raise ConfigError("model.two_stream does not run adapters in the query stream; set adapter_size = 0")
        if self.arch == "encoder" and "lm" in self.heads and not self.two_stream:
            raise ConfigError(
                "model.heads has 'lm' (next-token prediction) but model.arch = 'encoder' sees the "
                "future; use arch = 'decoder' or the 'mlm' head"
            )
        if self.position == "rotary" and self.dim_per_head % 2:
            raise ConfigError("rotary positions need an even head dimension")
        if self.position == "shaw" and self.relative_max_distance < 1:
            raise ConfigError("model.relative_max_distance (the shaw clipping distance) must be >= 1")
        if (self.relative_values or self.relative_key_query) and self.position != "shaw":
            raise ConfigError("model.relative_values / relative_key_query belong to position = 'shaw'; "
                              f"the model uses position = {self.position!r}")
        if self.mem_len < 0 or self.clamp_len < 0:
            raise ConfigError("model.mem_len and model.clamp_len must be >= 0")
        if (self.mem_len or self.relative_segments) and self.attention != "xl":
            raise ConfigError("model.mem_len / relative_segments need model.attention = 'xl' (relative "
                              f"positions that do not depend on absolute indices); got {self.attention!r}")
        if self.attention == "xl" and self.arch == "encoder-decoder":
            raise ConfigError("model.attention = 'xl' serves encoders and decoders, not encoder-decoders")
        if self.attention == "xl" and self.position != "none":
            raise ConfigError("model.attention = 'xl' brings its own relative positions; set "
                              f"model.position = 'none' (got {self.position!r})")
        if self.ff_chunks < 0:
            raise ConfigError("model.ff_chunks must be 0 (off) or a positive number of slices")
        if self.reversible:
            bad = [why for cond, why in (
                (not self.prenorm, "prenorm = true (the residual branches are x + f(norm(x)))"),
                (self.arch == "encoder-decoder", "no cross-attention (arch encoder or decoder)"),
                (self.position == "t5", "a position bias without parameters (not t5)"),
            ) if cond]
            if bad:
                raise ConfigError(f"model.reversible needs {'; '.join(bad)}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.attention_dropout < 1.0:
            raise ConfigError("model.dropout and model.attention_dropout must be in [0, 1)")
        if not 0.0 <= self.layerdrop < 1.0:
            raise ConfigError(f"model.layerdrop = {self.layerdrop} must be in [0, 1)")
        if self.layerdrop and self.reversible:
            raise ConfigError("model.layerdrop is not implemented for reversible stacks; set one of them off")
        if self.head_counts is not None:
            if self.arch == "encoder-decoder" or self.share_layers or self.kv_heads != self.num_heads:
                raise ConfigError("model.head_counts (pruned heads) is for encoders and decoders with one "
                                  "kv head per query head and unshared layers")
            if len(self.head_counts) != self.layers or not all(1 <= h <= self.num_heads for h in self.head_counts):
                raise ConfigError(f"model.head_counts = {self.head_counts} must give 1..{self.num_heads} "
                                  f"heads for each of the {self.layers} layers")

    def _validate_lstm(self) -> None:
        choice("model.token_encoder", self.token_encoder, TOKEN_ENCODERS)
        choice("model.task_encoder", self.task_encoder, TASK_ENCODERS)
        if not 0.0 <= self.task_dropout < 1.0:
            raise ConfigError("model.task_dropout must be in [0, 1)")
        if self.task_hidden <= 0 or self.task_embedding < 0:
            raise ConfigError("model.task_hidden must be positive and model.task_embedding >= 0")
        if self.task_embedding and self.task_encoder == "none":
            raise ConfigError("model.task_embedding (the task's own input) feeds a task encoder; set "
                              "model.task_encoder = 'bilstm' or 'bag'")
        if self.arch not in ("bilm", "static"):
            return
        defaults = ModelConfig.__dataclass_fields__
        for name in NOT_FOR_LSTM:
            field = defaults[name]
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if getattr(self, name) != default:
                raise ConfigError(f"model.{name} = {getattr(self, name)!r} is a Transformer setting; a model of "
                                  f"arch {self.arch!r} has no attention or blocks to apply it to; drop it")
        if self.position != "none":
            raise ConfigError(f"model.arch = {self.arch!r} has no positions; set model.position = 'none'")
        bad = [h for h in self.heads if h not in ("bilm", "classify", "tag")]
        if bad:
            raise ConfigError(f"model.heads {bad} do not fit model.arch = {self.arch!r}; it has bilm (pre-training), "
                              "classify and tag")
        if self.arch == "static":
            if self.layers != 1 or "bilm" in self.heads or self.scalar_mix:
                raise ConfigError("model.arch = 'static' is one vectors table: layers = 1, no bilm head, no "
                                  "scalar mix")
            return
        if self.hidden % 2:
            raise ConfigError(f"model.hidden = {self.hidden} is forward + backward; it must be even")
        if self.token_encoder == "char-cnn":
            if not self.char_filters or any(len(f) != 2 or f[0] <= 0 or f[1] <= 0 for f in self.char_filters):
                raise ConfigError(f"model.char_filters = {self.char_filters} must be [width, count] pairs")
            if max(f[0] for f in self.char_filters) > self.max_characters - 2 or self.highway_layers < 0:
                raise ConfigError("model.char_filters must fit model.max_characters - 2 bytes; "
                                  "model.highway_layers >= 0")

    @property
    def head_input(self) -> int:
        """The width the task heads (classify, tag) read: the task encoder's output, else the body's."""
        if self.task_encoder == "bilstm":
            return 2 * self.task_hidden
        return self.hidden + (self.task_embedding if self.task_encoder == "bag" else 0)

    def layer_config(self, index: int) -> "ModelConfig":
        """The config one block is built from: ``head_counts[index]`` heads of the model's
        head width when heads were pruned, the model's config otherwise."""
        if self.head_counts is None or self.head_counts[index] == self.num_heads:
            return self
        return dataclasses.replace(self, num_heads=self.head_counts[index], head_dim=self.dim_per_head,
                                   head_counts=None)

    # derived sizes
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden // self.num_heads

    @property
    def embed_dim(self) -> int:
        return self.embedding_size or self.hidden

    @property
    def use_final_norm(self) -> bool:
        return self.prenorm if self.final_norm is None else self.final_norm

    @property
    def is_causal(self) -> bool:
        return self.arch == "decoder"

    def num_parameters_estimate(self) -> int:
        """Rough parameter count (embeddings + blocks), for summaries."""
        h, d = self.hidden, self.dim_per_head
        attn = h * d * (self.num_heads * 2 + self.kv_heads * 2)
        ffn = h * self.intermediate * (3 if self.feedforward == "glu" else 2)
        blocks = (1 if self.share_layers else self.layers) * (attn + ffn)
        return blocks + self.vocab_size * self.embed_dim
