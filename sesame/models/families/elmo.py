"""ELMo (Peters et al. 2018): a bidirectional LSTM language model over a character-CNN
token encoder (or a word embedding, ``model.token_encoder = "embedding"``).

Shape: ``model.hidden`` is the width of a contextual vector, forward || backward, so each
direction projects to ``hidden / 2``; ``model.intermediate`` is the LSTM cell size and
``model.layers`` the LSTM depth (2 in the paper), with a residual connection between
layers. The hidden states are the token layer (its vector repeated for both directions,
as in the paper) and each LSTM layer's [forward; backward] states: what the scalar mix
weighs. The ``bilm`` head is one softmax shared by the two directions (the paper ties the
token representation and the softmax between directions; the LSTMs are separate).

ELMo has no Hugging Face counterpart, so this family registers no key map: ``sesame
convert`` refuses it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.model import ModelConfig
from sesame.config.registry import register
from sesame.errors import ConfigError, ShapeError
from sesame.models.heads import Head
from sesame.nn.char_cnn import CharCNN
from sesame.nn.lstm import BiLSTM


class WordEmbedding(nn.Module):
    def __init__(self, config: ModelConfig, dim: int):
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, dim, padding_idx=config.pad_token_id)

    def forward(self, input_ids):
        return self.tokens(input_ids)


class BiLMBody(nn.Module):
    """token encoder -> dropout -> biLSTM; returns the top layer [forward; backward]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        proj = config.hidden // 2
        if config.token_encoder == "char-cnn":
            self.embed = CharCNN(config.vocab_size, config.char_dim, config.char_filters, config.highway_layers,
                                 proj, config.max_characters)
        else:
            self.embed = WordEmbedding(config, proj)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = BiLSTM(proj, config.intermediate, config.layers, config.dropout)

    def reset_parameters(self) -> None:
        if isinstance(self.embed, CharCNN):
            self.embed.reset_parameters()
        for module in self.lstm.modules():
            if isinstance(module, nn.LSTM):
                module.reset_parameters()

    def directions(self, input_ids, attention_mask=None):
        """(token layer (B, T, H/2), [(forward, backward) per LSTM layer])."""
        if input_ids.dim() != 2:
            raise ShapeError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        from sesame.models.body import check_ids

        check_ids("input_ids", input_ids, self.config.vocab_size)
        lengths = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ShapeError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                                 f"{tuple(input_ids.shape)}")
            lengths = attention_mask.long().sum(-1)
            if bool((attention_mask.long().cumsum(-1) != torch.minimum(
                    torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)[None], lengths[:, None])).any()):
                raise ShapeError("the biLM reads right-padded rows (real tokens first); this attention_mask has "
                                 "padding before real tokens")
        x = self.embed(input_ids)
        return x, self.lstm(self.drop(x), lengths)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, layout=None, cache=None, positions=None,
                hidden_states=None, attentions=None, global_mask=None, target_mapping=None, query_layout=None):
        if cache is not None or attentions is not None or target_mapping is not None or layout is not None:
            raise ConfigError("an ELMo biLM has no attention: no layout, cache, attention maps or query stream")
        x, layers = self.directions(input_ids, attention_mask)
        if hidden_states is not None:
            hidden_states.append(torch.cat([x, x], dim=-1))
            hidden_states.extend(torch.cat(pair, dim=-1) for pair in layers)
        return torch.cat(layers[-1], dim=-1)


@register("head", "bilm")
class BiLMHead(Head):
    """One softmax over the vocabulary for both directions; the objective calls it
    (``direct``) on the forward half of the top layer for next tokens and on the backward
    half for previous tokens. ``sampled`` scores a subset of the classes."""

    direct = True
    token_level = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.arch != "bilm":
            raise ConfigError(f"the bilm head reads a biLM's two directions; the model is {config.arch!r}")
        self.decoder = nn.Linear(config.hidden // 2, config.vocab_size)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)

    def sampled(self, states: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """(N, d) states scored against ``classes`` (K,) only: (N, K)."""
        return F.linear(states, self.decoder.weight[classes], self.decoder.bias[classes])

    def forward(self, hidden, pooled=None, select=None):
        raise RuntimeError("the bilm head is called by the bilm objective (logits / sampled)")
