"""Decoding over the cache protocol: greedy, sampling (temperature, top-k,
top-p), beam search (length penalty, early stopping), repetition penalty, stop
tokens, batched prompts with left padding. Serves decoders and
encoder-decoders alike through ``model.step(ids, cache, mask, memory, memory_mask)``.
Transformer-XL decoders (``model.attention = 'xl'``) decode over a bounded recurrence
memory (``model.new_memory``: each layer's last ``mem_len`` hidden states) instead of
the growing KV cache; with no memory length set they use the KV cache (full context).
Bidirectional encoders generate as prefix LMs (``prefix_lm=True``, UniLM's seq2seq route): the
prompt is encoded once with full visibility (segment 0) and the new tokens (segment 1)
are generated causally over the cache, the ``mlm`` head (else ``lm``) giving the logits."""
from __future__ import annotations

import dataclasses

import torch

from sesame.config.base import Section, choice
from sesame.errors import ConfigError, ShapeError
from sesame.nn import Layout


@dataclasses.dataclass
class GenerateConfig(Section):
    SECTION = "generate"
    strategy: str = "greedy"  # greedy | sample | beam
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0  # 1.0: off (CTRL-style: divide positive logits, multiply negative)
    num_beams: int = 4
    length_penalty: float = 1.0  # beam score = log-prob sum / length ** length_penalty
    early_stopping: bool = True  # beam: stop an input once num_beams hypotheses have finished
    stop_ids: list[int] = dataclasses.field(default_factory=list)  # end a sequence (eos and others)
    mem_len: int = 0  # xl decoders: recurrence memory length (0: model.mem_len; both 0: KV cache, full context)
    seed: int | None = None

    def validate(self) -> None:
        choice("generate.strategy", self.strategy, ("greedy", "sample", "beam"))
        if self.max_new_tokens < 1:
            raise ConfigError("generate.max_new_tokens must be at least 1")
        if self.temperature <= 0:
            raise ConfigError("generate.temperature must be positive; use strategy = 'greedy' for argmax")
        if not 0 < self.top_p <= 1:
            raise ConfigError("generate.top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ConfigError("generate.repetition_penalty must be positive")
        if self.mem_len < 0:
            raise ConfigError("generate.mem_len must be >= 0 (0: the model's own mem_len)")


@dataclasses.dataclass
class Generated:
    sequences: torch.Tensor  # (B, prompt + new) for decoders, (B, new) for encoder-decoders; padded with pad_id
    new_tokens: list[list[int]]  # each row's generated ids, stop token included if one was hit
    scores: torch.Tensor | None = None  # beam: final scores; else summed log-probs of the chosen tokens
    step_logits: list[torch.Tensor] | None = None  # greedy/sample: raw logits of every step


def penalise_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens already in ``seen`` (B, T) less likely."""
    if penalty == 1.0:
        return logits
    picked = logits.gather(1, seen)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(1, seen, picked)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then nucleus (top-p) filtering; removed entries become -inf."""
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p (the top token always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


class _Decoder:
    """Feeds prompts and new tokens through ``model.step``, keeping masks and the cache."""

    def __init__(self, model, input_ids, attention_mask, start_id, mem_len: int = 0, prefix_lm: bool = False):
        self.model = model
        self.encdec = model.config.arch == "encoder-decoder"
        self.prefix = None
        if prefix_lm:
            if model.config.arch != "encoder" or not ({"mlm", "lm"} & set(model.heads)):
                raise ConfigError("prefix-LM generation needs an encoder with an `mlm` or `lm` head")
            self.head = "mlm" if "mlm" in model.heads else "lm"
            # the whole (left-padded) prompt is the bidirectional prefix
            self.prefix = torch.full((input_ids.shape[0],), input_ids.shape[1], dtype=torch.long,
                                     device=input_ids.device)
        elif model.config.arch == "encoder" or "lm" not in model.heads:
            raise ConfigError("generation needs a decoder or encoder-decoder with an `lm` head "
                              "(an encoder generates as a prefix LM: prefix_lm=True)")
        b = input_ids.shape[0]
        mem_len = mem_len or model.config.mem_len
        if mem_len and (self.encdec or model.config.attention != "xl"):
            raise ConfigError(f"generate.mem_len = {mem_len} needs a decoder with model.attention = 'xl' "
                              f"(got {model.config.arch} with attention {model.config.attention!r}); set it to 0")
        self.cache = model.new_memory(mem_len) if mem_len else model.new_cache()
        self.memory = self.memory_mask = None
        if self.prefix is not None:
            self.tokens = input_ids
            self.mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        elif self.encdec:
            self.memory = model(input_ids, attention_mask).memory
            self.memory_mask = attention_mask
            self.tokens = torch.full((b, 1), start_id, dtype=torch.long, device=input_ids.device)
            self.mask = None
        else:
            self.tokens = input_ids
            self.mask = attention_mask

    def first(self) -> torch.Tensor:
        return self._step(self.tokens)

    def next(self, token: torch.Tensor) -> torch.Tensor:
        self.tokens = torch.cat([self.tokens, token[:, None]], 1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], 1)
        return self._step(token[:, None])

    def _step(self, ids):
        if self.prefix is not None:
            return self._prefix_step(ids)
        # a bounded memory holds only the last mem_len positions: the mask covers those and the new ids
        mask = None if self.mask is None else self.mask[:, -(self.cache.length + ids.shape[1]):]
        logits, self.cache = self.model.step(ids, self.cache, mask, self.memory, self.memory_mask, last=True)
        return logits[:, -1].float()

    def _prefix_step(self, ids):
        past = self.cache.length
        types = torch.full_like(ids, 0 if past == 0 else 1)  # segment 0: the prompt, 1: what is generated
        layout = Layout(causal=True, prefix_len=self.prefix, key_padding=self.mask, q_offset=past)
        out = self.model(ids, self.mask, types, layout=layout, cache=self.cache)
        self.cache = out.cache if out.cache is not None else self.cache
        return out.logits[self.head][:, -1].float()

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)
        self.tokens = self.tokens.index_select(0, index)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)
        if self.memory is not None:
            self.memory = self.memory.index_select(0, index)
            self.memory_mask = None if self.memory_mask is None else self.memory_mask.index_select(0, index)


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
             config: GenerateConfig | None = None, pad_id: int = 0, start_id: int | None = None,
             keep_logits: bool = False, prefix_lm: bool = False, **overrides) -> Generated:
    """Continue ``input_ids`` (left-padded for decoders and prefix LMs when rows differ in
    length); ``prefix_lm``: decode an encoder as a prefix LM (see the module docstring)."""
    config = (config or GenerateConfig()).replace(**overrides) if overrides else (config or GenerateConfig())
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ShapeError(f"input_ids must be a non-empty (batch, length) tensor, got {tuple(input_ids.shape)}")
    causal_prompt = model.config.arch == "decoder" or prefix_lm
    if causal_prompt and attention_mask is not None and not bool(attention_mask[:, -1].all()):
        raise ShapeError("batched prompts must be LEFT-padded for generation (the last column must be real tokens)")
    model.eval()
    if start_id is None:
        start_id = config.stop_ids[0] if config.stop_ids else pad_id
    if config.strategy == "beam":
        return _beam(model, input_ids, attention_mask, config, pad_id, start_id, prefix_lm)
    gen = torch.Generator(device=input_ids.device)
    if config.seed is not None:
        gen.manual_seed(config.seed)
    dec = _Decoder(model, input_ids, attention_mask, start_id, config.mem_len, prefix_lm)
    b = input_ids.shape[0]
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    stops = torch.tensor(config.stop_ids or [-1], device=input_ids.device)
    new, logps, kept = [], torch.zeros(b, device=input_ids.device), []
    logits = dec.first()
    for step in range(config.max_new_tokens):
        if keep_logits:
            kept.append(logits)
        scores = penalise_repeats(logits, dec.tokens, config.repetition_penalty)
        if config.strategy == "greedy":
            token = scores.argmax(-1)
        else:
            scores = filter_logits(scores / config.temperature, config.top_k, config.top_p)
            token = torch.multinomial(scores.softmax(-1), 1, generator=gen).squeeze(1)
        logps += torch.where(done, 0.0, logits.log_softmax(-1).gather(1, token[:, None]).squeeze(1))
        token = torch.where(done, torch.full_like(token, pad_id), token)
        new.append(token)
        done |= torch.isin(token, stops)
        if bool(done.all()) or step == config.max_new_tokens - 1:
            break
        logits = dec.next(token)
    new_ids = torch.stack(new, 1)
    rows = [_trim(row, config.stop_ids, pad_id) for row in new_ids.tolist()]
    sequences = new_ids if dec.encdec else torch.cat([input_ids, new_ids], 1)
    return Generated(sequences, rows, logps, kept if keep_logits else None)


def _trim(row: list[int], stop_ids, pad_id) -> list[int]:
    for i, tok in enumerate(row):
        if tok in stop_ids:
            return row[: i + 1]
    return row


def _beam(model, input_ids, attention_mask, config: GenerateConfig, pad_id: int, start_id: int,
          prefix_lm: bool = False) -> Generated:
    """Beam search with a length penalty; rows are (input, beam) flattened."""
    b, k = input_ids.shape[0], config.num_beams
    device = input_ids.device
    expand = torch.arange(b, device=device).repeat_interleave(k)
    dec = _Decoder(model, input_ids.index_select(0, expand),
                   None if attention_mask is None else attention_mask.index_select(0, expand), start_id,
                   config.mem_len, prefix_lm)
    beam_scores = torch.zeros(b, k, device=device)
    beam_scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    closed = [False] * b
    seqs = torch.empty(b * k, 0, dtype=torch.long, device=device)
    logits = dec.first()
    for step in range(config.max_new_tokens):
        logp = penalise_repeats(logits, dec.tokens, config.repetition_penalty).log_softmax(-1)
        v = logp.shape[-1]
        cand = (beam_scores.view(-1, 1) + logp).view(b, k * v)
        top, idx = cand.topk(2 * k, dim=1)
        beam_of, token_of = idx // v, idx % v
        next_scores = torch.full((b, k), float("-inf"), device=device)
        next_beam = torch.zeros(b, k, dtype=torch.long, device=device)
        next_token = torch.full((b, k), pad_id, dtype=torch.long, device=device)
        for i in range(b):
            if closed[i]:
                continue
            slot = 0
            for score, beam, token in zip(top[i].tolist(), beam_of[i].tolist(), token_of[i].tolist()):
                if score == float("-inf"):
                    break
                if token in config.stop_ids:
                    hyp = seqs[i * k + beam].tolist() + [token]
                    finished[i].append((score / len(hyp) ** config.length_penalty, hyp))
                    continue
                next_scores[i, slot], next_beam[i, slot], next_token[i, slot] = score, beam, token
                slot += 1
                if slot == k:
                    break
            if config.early_stopping and len(finished[i]) >= k:
                closed[i] = True
        if all(closed):
            break
        rows = (torch.arange(b, device=device)[:, None] * k + next_beam).view(-1)
        seqs = torch.cat([seqs.index_select(0, rows), next_token.view(-1, 1)], 1)
        beam_scores = next_scores
        dec.reorder(rows)
        if step < config.max_new_tokens - 1:
            logits = dec.next(next_token.view(-1))
    best_rows, best_scores = [], []
    for i in range(b):
        pool = list(finished[i])
        if not closed[i]:
            for j in range(k):
                if beam_scores[i, j] > float("-inf"):
                    hyp = seqs[i * k + j].tolist()
                    pool.append((beam_scores[i, j].item() / max(len(hyp), 1) ** config.length_penalty, hyp))
        score, hyp = max(pool, key=lambda item: item[0])
        best_rows.append(hyp)
        best_scores.append(score)
    width = max(len(r) for r in best_rows)
    new_ids = torch.full((b, width), pad_id, dtype=torch.long, device=device)
    for i, row in enumerate(best_rows):
        new_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    sequences = new_ids if model.config.arch == "encoder-decoder" else torch.cat([input_ids, new_ids], 1)
    return Generated(sequences, best_rows, torch.tensor(best_scores))
