"""Bodies: the embeddings, positions and block stacks of an encoder, a decoder,
or an encoder-decoder. Heads live in ``heads.py``; ``model.py`` joins them."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.errors import ConfigError, ShapeError
from sesame.nn import Context, Embeddings, KVCache, Layout, Stack
from sesame.nn.attention.two_stream import QueryStream, two_stream_block
from sesame.nn.cache import Memory
from sesame.nn.norms import build_norm
from sesame.nn.positions import T5Bias, build_position


def check_ids(name: str, ids: torch.Tensor | None, size: int) -> None:
    """Refuse ids outside [0, size) with a message, not an IndexError or device assert."""
    if ids is None or ids.numel() == 0:
        return
    if ids.dtype.is_floating_point:
        raise ShapeError(f"{name} must be integer token ids, got dtype {ids.dtype}")
    lo, hi = torch.aminmax(ids)
    if int(lo) < 0 or int(hi) >= size:
        bad = int(hi) if int(hi) >= size else int(lo)
        raise ShapeError(
            f"{name} contains id {bad}, outside the table of {size} entries; check that the "
            "tokenizer matches the model (model.vocab_size / model.type_vocab_size)"
        )


def position_ids(attention_mask, past: int, t: int, device) -> torch.Tensor:
    """Positions count real tokens, so padding (left or right) never shifts them."""
    if attention_mask is not None:
        pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return pos[:, -t:]
    return torch.arange(past, past + t, device=device)[None]


class Body(nn.Module):
    """An encoder (bidirectional) or decoder (causal) stack over embeddings."""

    def __init__(self, config: ModelConfig, needed: set[str] = frozenset()):
        super().__init__()
        self.config = config
        needed = set(needed) | ({"causal"} if config.is_causal else set())
        needed |= {"bias"} if config.position in ("t5", "alibi") else set()
        self.embed = Embeddings(config)
        self.position = build_position(config)
        self.layers = Stack(config, config.layers, needed=needed)
        self.final_norm = (
            build_norm(config.norm, config.hidden, config.norm_eps) if config.use_final_norm else None
        )
        self.query = QueryStream(config.hidden, config.init_std) if config.two_stream else None

    def new_cache(self) -> KVCache:
        return KVCache(self.layers.depth)

    def new_memory(self, mem_len: int | None = None) -> Memory:
        """Transformer-XL recurrence memory (model.mem_len hidden states per layer)."""
        mem_len = mem_len or self.config.mem_len
        if not mem_len or self.config.attention != "xl":
            raise ConfigError("a recurrence memory needs model.attention = 'xl' and model.mem_len > 0 "
                              f"(got attention {self.config.attention!r}, mem_len {mem_len})")
        return Memory(self.layers.depth, mem_len)

    def segments(self, token_type_ids, past: int):
        """Key segment ids for relative segment encodings (memory keys count as segment 0)."""
        if not self.config.relative_segments or token_type_ids is None:
            return None
        pad = token_type_ids.new_zeros(token_type_ids.shape[0], past)
        return torch.cat([pad, token_type_ids], 1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        layout: Layout | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        hidden_states: list | None = None,
        attentions: list | None = None,
        global_mask: torch.Tensor | None = None,
        target_mapping: torch.Tensor | None = None,
        query_layout: Layout | None = None,
    ) -> torch.Tensor:
        """With ``target_mapping`` (B, M, T) (XLNet, ``model.two_stream``) the query stream runs
        beside the content stream under ``query_layout`` and its M rows are returned."""
        cfg = self.config
        if input_ids.dim() != 2:
            raise ShapeError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        check_ids("input_ids", input_ids, cfg.vocab_size)
        if not cfg.relative_segments:  # relative segments compare ids; they index no table
            check_ids("token_type_ids", token_type_ids, max(cfg.type_vocab_size, 1))
        past = cache.length if cache is not None else 0
        t = input_ids.shape[1]
        if attention_mask is not None and attention_mask.shape != (input_ids.shape[0], past + t):
            raise ShapeError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                f"{(input_ids.shape[0], past + t)} (batch, cached + new tokens)"
            )
        if cfg.position == "learned" and positions is None and past + t > cfg.max_positions:
            raise ShapeError(
                f"a sequence of {past + t} tokens is longer than the position table "
                f"(model.max_positions = {cfg.max_positions}); split the text into windows of at "
                "most that many tokens"
            )
        if positions is None:
            positions = position_ids(attention_mask, past, t, input_ids.device)
        hook = self.position.hook
        x = self.embed(input_ids, token_type_ids, self.position.embed(positions) if hook == "input" else None)
        if layout is None:
            layout = Layout(causal=cfg.is_causal, key_padding=attention_mask, q_offset=past, global_mask=global_mask,
                            segments=self.segments(token_type_ids, past))
        elif layout.segments is None and cfg.relative_segments:
            layout = dataclasses.replace(layout, segments=self.segments(token_type_ids, past))
        if target_mapping is not None:
            return self._two_streams(x, layout, query_layout, target_mapping, cache)
        bias = None
        if hook == "bias":
            kpos = torch.arange(past + t, device=x.device)
            bias = self.position.bias(kpos[past:], kpos)
        ctx = Context(layout, self.position, positions, bias, attentions=attentions)
        if hidden_states is not None:
            hidden_states.append(x)
        x = self.layers(x, ctx, cache, hidden_states)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if hidden_states is not None:
                hidden_states[-1] = x
        return x


    def _two_streams(self, h, layout, query_layout, target_mapping, cache):
        if self.query is None:
            raise ConfigError("a target_mapping (query stream) needs model.two_stream = true (XLNet)")
        if query_layout is None:
            raise ShapeError("the query stream needs its query_layout (see nn/attention/two_stream.py)")
        if query_layout.segments is None and layout.segments is not None:
            query_layout = dataclasses.replace(query_layout, segments=layout.segments)
        g = self.embed.drop(self.query.start(h.shape[0], target_mapping.shape[1]).to(h.dtype))
        for i in range(self.layers.depth):
            block = self.layers[0 if self.layers.shared else i]
            h, g = two_stream_block(block, h, g, layout, query_layout, target_mapping,
                                    cache.layers[i] if cache is not None else None)
        return self.final_norm(g) if self.final_norm is not None else g


class EncoderDecoderBody(nn.Module):
    """A bidirectional encoder and a causal decoder with cross-attention, sharing
    one token embedding (BART/T5/MASS shape). Each side has its own position table
    (or T5 bias) and, with ``embedding_norm``, its own embedding norm (BART)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config)
        self.decoder_embed_norm = (
            build_norm(config.norm, config.embed_dim, config.norm_eps) if config.embedding_norm else None
        )
        self.position = build_position(config)
        dec_cfg = config.replace(arch="decoder", heads=["lm"])
        self.decoder_position = (
            T5Bias(config, bidirectional=False) if config.position == "t5" else build_position(dec_cfg)
        )
        needed = {"bias"} if config.position in ("t5", "alibi") else set()
        self.encoder = Stack(config, config.layers, needed=needed | {"padding"})
        self.decoder = Stack(config, config.decoder_layers or config.layers, cross=True,
                             needed=needed | {"causal", "padding"})
        norm = lambda: build_norm(config.norm, config.hidden, config.norm_eps)  # noqa: E731
        self.encoder_norm = norm() if config.use_final_norm else None
        self.decoder_norm = norm() if config.use_final_norm else None

    def new_cache(self) -> KVCache:
        return KVCache(self.decoder.depth)

    def _run(self, stack, position, ids, mask, layout, past, memory=None, memory_layout=None, cache=None):
        cfg = self.config
        check_ids("input_ids", ids, cfg.vocab_size)
        t = ids.shape[1]
        if cfg.position == "learned" and past + t > cfg.max_positions:
            raise ShapeError(
                f"a sequence of {past + t} tokens is longer than model.max_positions = {cfg.max_positions}"
            )
        positions = position_ids(mask, past, t, ids.device)
        hook = position.hook
        norm = self.decoder_embed_norm if stack is self.decoder else None
        x = self.embed(ids, None, position.embed(positions) if hook == "input" else None, norm)
        bias = None
        if hook == "bias":
            kpos = torch.arange(past + t, device=ids.device)
            bias = position.bias(kpos[past:], kpos)
        ctx = Context(layout, position, positions, bias, memory, memory_layout)
        return stack(x, ctx, cache)

    def encode(self, input_ids, attention_mask=None) -> torch.Tensor:
        layout = Layout(key_padding=attention_mask)
        x = self._run(self.encoder, self.position, input_ids, attention_mask, layout, 0)
        return self.encoder_norm(x) if self.encoder_norm is not None else x

    def decode(self, decoder_input_ids, memory, memory_mask=None, decoder_attention_mask=None, cache=None):
        past = cache.length if cache is not None else 0
        layout = Layout(causal=True, key_padding=decoder_attention_mask, q_offset=past)
        memory_layout = Layout(key_padding=memory_mask)
        x = self._run(self.decoder, self.decoder_position, decoder_input_ids, decoder_attention_mask,
                      layout, past, memory, memory_layout, cache)
        return self.decoder_norm(x) if self.decoder_norm is not None else x
