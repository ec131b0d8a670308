"""The task model of feature-based transfer (ELMo's recipe, Peters et al. 2018, sec. 3.3):
the features a frozen model gives (its scalar mix, or its top layer; static vectors),
concatenated with the task's own token embedding (``model.task_embedding``), read by a
small BiLSTM (``model.task_encoder = "bilstm"``) or averaged (``"bag"``, a bag of
vectors). Its tokens feed the ``tag`` head; a sentence vector (the max over the BiLSTM
states, or the mean of the vectors, over real tokens) feeds ``classify``.

The same module sits on an ELMo, a Transformer or a static-vectors model, so their
features compare under one task model."""
from __future__ import annotations

import torch
from torch import nn

from sesame.config.model import ModelConfig
from sesame.nn.lstm import reverse_padded


class TaskEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.kind = config.task_encoder
        self.own = nn.Embedding(config.vocab_size, config.task_embedding) if config.task_embedding else None
        width = config.hidden + config.task_embedding
        self.drop = nn.Dropout(config.task_dropout)
        if self.kind == "bilstm":
            self.fwd = nn.LSTM(width, config.task_hidden, batch_first=True)
            self.bwd = nn.LSTM(width, config.task_hidden, batch_first=True)

    def reset_parameters(self) -> None:
        if self.kind == "bilstm":
            self.fwd.reset_parameters()
            self.bwd.reset_parameters()

    def forward(self, features: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(token states (B, T, D), sentence vectors (B, D))."""
        x = features if self.own is None else torch.cat([features, self.own(input_ids).to(features.dtype)], -1)
        x = self.drop(x)
        mask = (torch.ones(input_ids.shape, dtype=torch.bool, device=x.device) if attention_mask is None
                else attention_mask.bool())
        if self.kind == "bag":
            m = mask[..., None].to(x.dtype)
            return x, (x * m).sum(1) / m.sum(1).clamp(min=1)
        lengths = mask.long().sum(-1)
        h = torch.cat([self.fwd(x)[0], reverse_padded(self.bwd(reverse_padded(x, lengths))[0], lengths)], -1)
        pooled = h.masked_fill(~mask[..., None], float("-inf")).max(1).values
        return self.drop(h), self.drop(pooled)


class StaticBody(nn.Module):
    """A table of static word vectors (``arch = "static"``): the features of the static
    baseline. ``sesame.static_model`` fills it from word2vec / GloVe / fastText vectors."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Module()
        self.embed.tokens = nn.Embedding(config.vocab_size, config.hidden)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, layout=None, cache=None, positions=None,
                hidden_states=None, attentions=None, global_mask=None, target_mapping=None, query_layout=None):
        from sesame.errors import ConfigError
        from sesame.models.body import check_ids

        if cache is not None or attentions is not None or target_mapping is not None:
            raise ConfigError("a static-vectors model has no attention, cache or query stream")
        check_ids("input_ids", input_ids, self.config.vocab_size)
        x = self.embed.tokens(input_ids)
        if hidden_states is not None:
            hidden_states.append(x)
        return x
