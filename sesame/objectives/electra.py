"""ELECTRA (Clark et al. 2020): replaced-token detection, generator and
discriminator trained jointly in one module.

The batch is masked as for MLM (``unit`` and rates as in ``[objective.options]``).
The generator, a small MLM model (the ``[generator]`` section; by default the
discriminator's shape with a quarter of its hidden size, intermediate size and
heads), predicts the masked tokens; replacements are sampled from its softmax
with no gradient through the sampling. The discriminator reads the sampled
sequence and classifies every real token as original or replaced; a sampled
token equal to the original counts as original.

Loss: ``MLM(generator) + rtd_weight * RTD`` (``rtd_weight`` = λ = 50, the paper's).
The paper adds the per-token *means*; to keep the loss a sum over the batch divided
by one count (exact gradient accumulation), the count is the generator's targets
and the RTD sum is scaled by ``mask_prob``, the expected ratio of masked to scored
tokens, so the two agree in expectation (up to the few special tokens the
discriminator also scores). With ``share_embeddings`` (default) the generator uses
the discriminator's token, position and segment embeddings (its embedding size
must then equal the discriminator's).

``sesame pretrain`` writes the discriminator as the run's ``model/`` and the
generator as ``generator/``; both export to Hugging Face ELECTRA
(``ElectraForPreTraining`` / ``ElectraForMaskedLM``)."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from sesame.config.registry import register
from sesame.errors import ConfigError
from sesame.objectives.base import IGNORE, TokenObjective, Vocab, scored_loss, to_tensors
from sesame.objectives.masking import mask_batch
from sesame.objectives.mlm import MLMOptions
from sesame.task import TaskOutput


@dataclasses.dataclass
class ELECTRAOptions(MLMOptions):
    rtd_weight: float = 50.0
    share_embeddings: bool = True

    def validate(self) -> None:
        super().validate()
        if self.rtd_weight <= 0:
            raise ConfigError("objective.options.rtd_weight (λ) must be positive")


def default_generator(disc):
    """The paper's default: the discriminator's shape at a quarter of the width."""
    heads = max(1, disc.num_heads // 4)
    hidden = max(heads, disc.hidden // 4)
    return disc.replace(hidden=hidden - hidden % heads, intermediate=max(1, disc.intermediate // 4),
                        num_heads=heads, num_kv_heads=None, head_dim=None, heads=["mlm"],
                        embedding_size=disc.embed_dim if disc.embed_dim != hidden - hidden % heads else None)


class ELECTRAModule(nn.Module):
    """``model`` is the discriminator (what the run saves as ``model/``), ``generator`` the MLM."""

    def __init__(self, model, generator, opts: ELECTRAOptions):
        super().__init__()
        self.model, self.generator, self.opts = model, generator, opts
        if opts.share_embeddings:
            g, d = generator.body, model.body
            g.embed.tokens = d.embed.tokens
            if d.embed.types is not None and g.embed.types is not None:
                g.embed.types = d.embed.types
            # a learned table is shared; a parameter-free code (rotary, alibi) is sized per model, so
            # each keeps its own (the generator's heads are narrower)
            shapes = [p.shape for p in d.position.parameters()]
            if type(g.position) is type(d.position) and shapes and \
                    [p.shape for p in g.position.parameters()] == shapes:
                g.position = d.position
            generator.tie_weights()
            generator.check_ties()

    def forward(self, batch: dict[str, torch.Tensor]) -> TaskOutput:
        ids, labels = batch["input_ids"], batch["labels"]
        mask, types = batch.get("attention_mask"), batch.get("token_type_ids")
        select = labels != IGNORE
        gen = self.generator(ids, mask, types, select=select).logits["mlm"]
        gen_loss, n, correct = scored_loss(gen, labels[select])
        with torch.no_grad():
            sampled = torch.multinomial(F.softmax(gen.detach().float(), -1), 1).squeeze(-1)
        original = torch.where(select, labels, ids)
        fake = ids.clone()
        fake[select] = sampled
        replaced = fake != original
        real = mask.bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool)
        logits = self.model(fake, mask, types).logits["rtd"]
        rtd = F.binary_cross_entropy_with_logits(logits.float()[real], replaced[real].float(), reduction="sum")
        n_real = real.sum()
        rtd_correct = ((logits[real] > 0) == replaced[real]).sum()
        loss = gen_loss + self.opts.rtd_weight * self.opts.mask_prob * rtd
        return TaskOutput(loss, n, {
            "gen_loss": (gen_loss.detach(), n), "gen_accuracy": (correct, n),
            "rtd_loss": (rtd.detach(), n_real), "rtd_accuracy": (rtd_correct, n_real),
            "replaced": ((replaced & real).sum(), n_real),
        })


@register("objective", "electra")
class ELECTRA(TokenObjective):
    name = "electra"
    archs = ("encoder",)
    heads = ("rtd",)
    corrupts = True
    composable = False
    uses_generator = True
    Options = ELECTRAOptions

    def __init__(self, vocab: Vocab, opts: dict | None = None, generator=None):
        super().__init__(vocab, opts)
        self.generator = generator

    def transform(self, batch, rng):
        out = {k: batch[k] for k in ("attention_mask", "token_type_ids") if batch.get(k) is not None}
        masked = mask_batch(batch, rng, self.opts, self.vocab)
        out["input_ids"], out["labels"] = masked["input_ids"], masked["labels"]
        return to_tensors(out)

    def generator_config(self, disc):
        gen = self.generator if self.generator is not None else default_generator(disc)
        if list(gen.heads) != ["mlm"]:
            raise ConfigError(f"generator.heads must be ['mlm'] (the generator is an MLM), got {gen.heads}")
        if gen.arch != "encoder":
            raise ConfigError(f"the generator must be an encoder, got generator.arch = {gen.arch!r}")
        if gen.vocab_size != disc.vocab_size:
            raise ConfigError(f"generator.vocab_size = {gen.vocab_size} differs from model.vocab_size = "
                              f"{disc.vocab_size}; the two read the same tokens")
        if self.opts.share_embeddings and gen.embed_dim != disc.embed_dim:
            raise ConfigError(
                f"shared embeddings need generator.embedding_size = model's embedding size {disc.embed_dim} "
                f"(the generator's is {gen.embed_dim}); set it, or objective.options.share_embeddings = false"
            )
        return gen

    def build(self, model_config) -> nn.Module:
        from sesame.models import build_model
        from sesame.objectives.base import trained_heads

        if model_config.arch != "encoder":
            raise ConfigError(f"ELECTRA's discriminator is an encoder, but model.arch = {model_config.arch!r}")
        disc = trained_heads(model_config, [self])
        self.vocab.check_model(disc.vocab_size)
        return ELECTRAModule(build_model(disc), build_model(self.generator_config(disc)), self.opts)
