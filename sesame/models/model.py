"""A model is a body plus named heads, built from a ``ModelConfig``."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.errors import CheckpointError, ConfigError
from sesame.models.body import Body, EncoderDecoderBody
from sesame.models.heads import build_head
from sesame.models.task_encoder import StaticBody, TaskEncoder
from sesame.nn import KVCache, Layout
from sesame.nn.adapters import Adapter
from sesame.nn.scalar_mix import ScalarMix


@dataclasses.dataclass
class ModelOutput:
    hidden: torch.Tensor  # last hidden states (decoder side for encoder-decoders)
    logits: dict[str, torch.Tensor]
    pooled: torch.Tensor | None = None
    hidden_states: list[torch.Tensor] | None = None  # embeddings output, then each layer
    cache: KVCache | None = None
    memory: torch.Tensor | None = None  # encoder output of an encoder-decoder
    attentions: list | None = None  # per layer AttentionMap (probs, scores), when asked


class Model(nn.Module):
    def __init__(self, config: ModelConfig, needed: set[str] = frozenset()):
        super().__init__()
        self.config = config
        if config.arch == "encoder-decoder":
            self.body = EncoderDecoderBody(config)
        elif config.arch == "bilm":
            from sesame.models.families.elmo import BiLMBody

            self.body = BiLMBody(config)
        elif config.arch == "static":
            self.body = StaticBody(config)
        else:
            self.body = Body(config, needed)
        names = list(config.heads)
        if any(h in names for h in ("nsp", "sop")) and "pooler" not in names:
            names.insert(0, "pooler")
        if config.task_encoder != "none" and "pooler" in names:
            names.remove("pooler")  # the task encoder makes the sentence vector
        self.heads = nn.ModuleDict({name: build_head(name, config) for name in names})
        # heads read the mix
        self.mix = ScalarMix(config.layers + 1, config.scalar_mix_norm) if config.scalar_mix else None
        self.task_encoder = TaskEncoder(config) if config.task_encoder != "none" else None
        self.apply(self._init)
        for part in (self.body, self.task_encoder):
            if hasattr(part, "reset_parameters"):
                part.reset_parameters()  # LSTMs, the character CNN: their own initialisation
        for module in self.modules():
            if isinstance(module, Adapter):
                module.reset_parameters()  # adapters start as the identity
        self.tie_weights()
        if config.init == "t5":
            from sesame.models.families.t5 import t5_init

            t5_init(self)

    # ---- weights -------------------------------------------------------
    def _init(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def ties(self) -> dict[str, str]:
        """Declared ties: tied key -> source key."""
        return {f"heads.{h}.{k}": src for h, head in self.heads.items() for k, src in head.tied.items()}

    def tie_weights(self) -> None:
        params = dict(self.named_parameters(remove_duplicate=False))
        for key, src in self.ties().items():
            module_name, attr = key.rsplit(".", 1)
            setattr(self.get_submodule(module_name), attr, params[src])

    def check_ties(self) -> None:
        params = dict(self.named_parameters(remove_duplicate=False))
        for key, src in self.ties().items():
            if params[key] is not params[src]:
                raise CheckpointError(f"{key} should be tied to {src} but is a separate tensor")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- forward -------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        layout: Layout | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        global_mask: torch.Tensor | None = None,
        target_mapping: torch.Tensor | None = None,
        query_layout: Layout | None = None,
    ) -> ModelOutput:
        """``select`` (bool (B, T)) limits token-level heads to those positions.
        ``output_attentions`` (encoders and decoders) returns each layer's
        ``AttentionMap`` through the kernel's explicit path. ``global_mask`` (bool (B, T)):
        tokens with global attention, for kernels that honour it (longformer)."""
        states = [] if output_hidden_states or self.mix is not None else None
        maps = [] if output_attentions else None
        if self.config.arch == "encoder-decoder":
            if memory is None:
                memory = self.body.encode(input_ids, attention_mask)
            if output_attentions:
                raise ConfigError("output_attentions is not available for encoder-decoder models yet")
            if decoder_input_ids is None:
                return ModelOutput(hidden=memory, logits={}, memory=memory)
            hidden = self.body.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask, cache)
        else:
            hidden = self.body(input_ids, attention_mask, token_type_ids, layout, cache, positions, states, maps,
                               global_mask, target_mapping, query_layout)
            if self.mix is not None:
                hidden = self.mix(states)
        logits: dict[str, torch.Tensor] = {}
        pooled = None
        if self.task_encoder is not None:
            hidden, pooled = self.task_encoder(hidden, input_ids, attention_mask)
        for name, head in self.heads.items():
            if name == "pooler":
                pooled = head(hidden)
            elif getattr(head, "direct", False):
                continue  # an objective calls it with its own inputs (sbo)
            else:
                logits[name] = head(hidden, pooled, select if head.token_level else None)
        return ModelOutput(hidden, logits, pooled, states if output_hidden_states else None, cache, memory, maps)

    def new_cache(self) -> KVCache:
        return self.body.new_cache()

    def new_memory(self, mem_len: int | None = None):
        """Transformer-XL recurrence memory; pass it as ``cache`` segment after segment."""
        if self.config.arch == "encoder-decoder":
            raise ConfigError("recurrence memory is for encoders and decoders, not encoder-decoders")
        return self.body.new_memory(mem_len)

    @torch.no_grad()
    def step(self, input_ids, cache: KVCache, attention_mask=None, memory=None, memory_mask=None,
             last: bool = False):
        """One decoding step over the cache protocol: returns (lm logits, cache); with ``last``
        only the final position's logits (all a decoder needs after a prompt)."""
        if self.config.arch == "encoder-decoder":
            hidden = self.body.decode(input_ids, memory, memory_mask, attention_mask, cache)
        else:
            hidden = self.body(input_ids, attention_mask, cache=cache)
        return self.heads["lm"](hidden[:, -1:] if last else hidden), cache

    def summary(self) -> str:
        c = self.config
        rows = [("component", "parameters")]
        if c.arch in ("bilm", "static"):
            return self._lstm_summary()
        seen: set[int] = set()
        for name, module in [("embeddings", self.body.embed)] + [
            (n, m) for n, m in self.body.named_children() if n not in ("embed",)
        ] + [(f"head:{n}", h) for n, h in self.heads.items()]:
            count = 0
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    count += p.numel()
            if count:
                rows.append((name, f"{count:,}"))
        rows.append(("total", f"{self.num_parameters():,}"))
        width = max(len(r[0]) for r in rows)
        shape = (
            f"{c.family} {c.arch}: {c.layers} layers, hidden {c.hidden}, {c.num_heads} heads"
            f" ({c.kv_heads} kv), ffn {c.feedforward}/{c.activation} {c.intermediate}, "
            f"{c.position} positions, {'pre' if c.prenorm else 'post'}-{c.norm}, vocab {c.vocab_size}"
        )
        if c.attention != "full":
            shape += f", {c.attention} attention" + (" (reversible)" if c.reversible else "")
        lines = [shape] + [f"  {a:<{width}}  {b:>14}" for a, b in rows]
        return "\n".join(lines)


    def _lstm_summary(self) -> str:
        c = self.config
        parts = [("body", self.body)] + [(f"head:{n}", h) for n, h in self.heads.items()]
        parts += [("task encoder", self.task_encoder)] if self.task_encoder is not None else []
        head = (f"{c.family} static vectors: dim {c.hidden}, vocab {c.vocab_size}" if c.arch == "static" else
                f"{c.family} biLM: {c.token_encoder} tokens, {c.layers} LSTM layers of {c.intermediate} cells, "
                f"projections {c.hidden // 2} per direction, vocab {c.vocab_size}")
        lines = [head] + [f"  {n:<14} {sum(p.numel() for p in m.parameters()):>14,}" for n, m in parts]
        return "\n".join(lines + [f"  {'total':<14} {self.num_parameters():>14,}"])


def build_model(config: ModelConfig, needed: set[str] = frozenset()) -> Model:
    model = Model(config, needed)
    model.check_ties()
    return model
