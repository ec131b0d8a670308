"""Why ELMo-tiny scored chance: short pre-trainings of recipes/elmo-tiny-en.toml in
variants of the token encoder, the softmax and the softmax bias's start, scored on the
run's own held-out windows.

- ``fixed``: the library as it is: the character CNN of sesame/nn/char_cnn.py (LayerNorm
  after the projection, TF-ELMo initialisation) and the bilm softmax bias started at the
  log unigram of the first training batches (``objective.options.prior = "unigram"``).
- ``zero-prior``: the same with the bias started at zero (``prior = "zero"``), the
  library before that fix; ``full-softmax-zero-prior`` also trains with the full softmax.
- ``before``: zero bias and the encoder as it was before the LayerNorm fix (no LayerNorm,
  PyTorch's default convolution init, the model-wide N(0, 0.02) projection, highway gate
  bias +1). It is reachable only here, through ``old_char_cnn()``, which patches the
  classes for the duration of one variant.
- ``embedding``, ``embedding-zero-prior``: a word embedding instead of the character CNN.
- ``--longer N``: ``fixed`` again for N steps (``fixed-N``).
- ``--diagnose [NAME ...]`` adds ``before``, ``embedding``, ``embedding-zero-prior`` and
  ``full-softmax-zero-prior``, or those named (the diagnosis in docs/elmo.md).

All variants read the same tokenizer and prepared corpus (the first run's), so the same
training batches and held-out windows. Per variant the JSON has the held-out
cross-entropy of the forward and backward LMs (full softmax, nats per token), the
character CNN's output norm, and ``token_cosine``: per hidden layer (character layer, LSTM
1, LSTM 2), the mean cosine between the layer-normalised vectors of two positions of a
window holding different tokens; near 1 means every token gets the same vector. Baselines:
``unigram`` is the entropy of the held-out forward targets' own unigram distribution (fitted
on the very tokens it scores, so optimistic); ``unigram_train`` (per step count) scores
those targets under the add-one smoothed unigram of the training batches a run of that
many steps reads, the context-free model a run could learn.

Run from the repository root (1-3 CPU minutes per variant at 200 steps on an idle core):

    python recipes/elmo_plateau_probe.py --steps 200 --longer 400 --diagnose

``--lr 1e-2`` adds ``fixed`` and ``zero-prior`` at that peak learning rate. A variant already
in the JSON with the same settings is kept, not retrained. Writes
docs/evidence/elmo/plateau-probe.json; the runs go to --work (runs/elmo-plateau-probe)."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sesame.nn.char_cnn import PAD, CharCNN, Highway  # noqa: E402


DIAGNOSE = ("before", "embedding", "embedding-zero-prior", "full-softmax-zero-prior")


@contextlib.contextmanager
def old_char_cnn():
    """CharCNN and Highway as they were before the fix (commit d43480b), for this block only."""
    init, reset, h_reset = CharCNN.__init__, CharCNN.reset_parameters, Highway.reset_parameters

    def old_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.norm = nn.Identity()

    def old_reset(self):  # the projection keeps the model-wide N(0, init_std) of Model._init
        nn.init.uniform_(self.embed.weight, -1.0, 1.0)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        for conv in self.convs:
            conv.reset_parameters()
        self.highway.reset_parameters()

    def old_h_reset(self):
        for layer in self.layers:
            dim = layer.out_features // 2
            nn.init.normal_(layer.weight, 0.0, (1.0 / dim) ** 0.5)
            nn.init.zeros_(layer.bias)
            nn.init.constant_(layer.bias[dim:], 1.0)

    CharCNN.__init__, CharCNN.reset_parameters, Highway.reset_parameters = old_init, old_reset, old_h_reset
    try:
        yield
    finally:
        CharCNN.__init__, CharCNN.reset_parameters, Highway.reset_parameters = init, reset, h_reset


@torch.no_grad()
def score(model, objective, evaluation, batches: int) -> dict:
    """Held-out forward/backward cross-entropy, unigram entropy, CNN norm and token cosines."""
    from sesame.objectives.base import IGNORE

    head = model.heads["bilm"]
    sums, counts, targets = [0.0, 0.0], [0, 0], []
    cos, cos_n, norms = None, 0, []
    for i in range(batches):
        batch = objective.transform(evaluation.batch(i, 0, 1, 0, 1), np.random.default_rng(i))
        ids = batch["input_ids"]
        layers: list[torch.Tensor] = []
        top = model.body(ids, batch.get("attention_mask"), hidden_states=layers)
        half = top.shape[-1] // 2
        for d, (states, labels) in enumerate(((top[..., :half], batch["labels"]),
                                              (top[..., half:], batch["labels_back"]))):
            keep = labels != IGNORE
            sums[d] += float(F.cross_entropy(head.logits(states[keep]).float(), labels[keep], reduction="sum"))
            counts[d] += int(keep.sum())
        targets.append(batch["labels"][batch["labels"] != IGNORE])
        norms.append(model.body.embed(ids).norm(dim=-1).flatten())
        differ = (ids[:, :, None] != ids[:, None, :]).float()  # pairs of positions holding different tokens
        values = []
        for h in layers:
            c = F.normalize(F.layer_norm(h, h.shape[-1:]), dim=-1)
            values.append(float(((c @ c.transpose(1, 2)) * differ).sum() / differ.sum()))
        cos = values if cos is None else [a + b for a, b in zip(cos, values)]
        cos_n += 1
    _, freq = torch.unique(torch.cat(targets), return_counts=True)
    p = freq.double() / freq.sum()
    norms = torch.cat(norms)
    return {"vocab_size": head.decoder.out_features,
            "forward_ce": round(sums[0] / counts[0], 4), "backward_ce": round(sums[1] / counts[1], 4),
            "forward_targets": counts[0], "unigram": round(float(-(p * p.log()).sum()), 4),
            "char_cnn_norm_mean": round(float(norms.mean()), 3), "char_cnn_norm_max": round(float(norms.max()), 3),
            "token_cosine": [round(v / cos_n, 4) for v in cos]}


def eval_prep(overrides: list[str], work: Path):
    """The prepared run (tokenizer, training batches, held-out windows) every variant shares."""
    from sesame.config import load_config
    from sesame.pretrain import prepare_run

    shared = [*overrides, f"tokenizer.path={str(work / 'fixed' / 'tokenizer.json')!r}",
              f"data.corpus={str(work / 'fixed' / 'corpus')!r}"]
    return prepare_run(load_config(ROOT / "recipes" / "elmo-tiny-en.toml", shared), work / "eval", False)


def train_unigram(overrides: list[str], work: Path, steps: int, batches: int) -> float:
    """Held-out forward CE under the smoothed unigram of the first ``steps`` training batches."""
    from sesame.objectives.base import IGNORE
    from sesame.pretrain import build_task

    prep = eval_prep(overrides, work)
    objective = build_task(prep.config, prep.tokenizer)
    objective.opts = objective.opts.replace(prior="unigram", prior_batches=steps)
    objective.fit_prior(prep.train)
    total, n = 0.0, 0
    for i in range(batches):
        labels = objective.transform(prep.eval.batch(i, 0, 1, 0, 1), np.random.default_rng(i))["labels"]
        total -= float(objective.log_prior.double()[labels[labels != IGNORE]].sum())
        n += int((labels != IGNORE).sum())
    return round(total / n, 4)


def run_variant(name: str, overrides: list[str], work: Path, batches: int) -> dict:
    from sesame.config import load_config
    from sesame.models import load_model
    from sesame.pretrain import build_task, pretrain

    cfg = load_config(ROOT / "recipes" / "elmo-tiny-en.toml", overrides)
    patch = old_char_cnn() if name.startswith("before") else contextlib.nullcontext()
    with patch:
        cpu, wall = time.process_time(), time.time()
        summary = pretrain(cfg, work / name, overwrite=True, progress=False, say=lambda s: None)
        cpu, wall = time.process_time() - cpu, time.time() - wall
        prep = eval_prep(overrides, work)
        model, _ = load_model(work / name / "model")
        out = score(model.eval(), build_task(prep.config, prep.tokenizer), prep.eval, batches)
    return {"variant": name, "steps": summary["steps"], "train_loss": round(float(summary["loss"]), 4),
            "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--longer", type=int, nargs="*", default=[],
                    help="also run fixed for these step counts")
    ap.add_argument("--lr", type=float, nargs="*", default=[],
                    help="also run fixed and zero-prior at these peak learning rates (the recipe's is 2e-3)")
    ap.add_argument("--diagnose", nargs="*", choices=DIAGNOSE, default=None,
                    help="also run these variants (all four when none is named)")
    ap.add_argument("--eval-batches", type=int, default=10, help="held-out batches of 32 x 64 tokens scored")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "elmo-plateau-probe")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a further config override for all variants (a quick check on less data, say)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "evidence" / "elmo" / "plateau-probe.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = [f"train.steps={args.steps}", f"train.eval_every={args.steps}", f"train.save_every={args.steps}",
            "train.threads=1", *args.set]
    reuse = [f"tokenizer.path={str(args.work / 'fixed' / 'tokenizer.json')!r}",
             f"data.corpus={str(args.work / 'fixed' / 'corpus')!r}"]
    zero, emb = "objective.options.prior='zero'", "model.token_encoder='embedding'"
    variants = {"fixed": [], "zero-prior": [zero]}  # fixed first: it trains the tokenizer and prepares the corpus
    plan = [(v, [*reuse, *extra] if extra else []) for v, extra in variants.items()]
    plan += [(f"{v}-{n}", [*reuse, *extra, *(f"train.{k}={n}" for k in ("steps", "eval_every", "save_every"))])
             for n in args.longer for v, extra in variants.items() if v == "fixed"]
    diagnose = {"before": [zero], "embedding": [emb], "embedding-zero-prior": [emb, zero],
                "full-softmax-zero-prior": [zero, "objective.options.softmax='full'"]}
    named = [] if args.diagnose is None else args.diagnose or list(DIAGNOSE)
    plan += [(v, [*reuse, *diagnose[v]]) for v in named]
    plan += [(f"{v}-lr{lr:g}", [*reuse, *extra, f"train.lr={lr!r}"]) for lr in args.lr for v, extra in variants.items()]
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = {r["variant"]: r for r in old.get("variants", []) if old.get("overrides") == base}
    unigram_train = dict(old.get("unigram_train", {})) if old.get("overrides") == base else {}
    command = f"python recipes/elmo_plateau_probe.py --steps {args.steps}"
    command += "".join(f" --{k} {' '.join(f'{x:g}' for x in v)}" for k, v in (("longer", args.longer), ("lr", args.lr))
                       if v) + (f" --diagnose {' '.join(named)}" if named else "")
    results = []
    for name, extra in plan:  # the JSON is written after each variant, so an interrupted probe keeps its runs
        if name in kept and kept[name].get("variant_overrides") == extra:
            results.append(kept[name])  # measured before with these settings: kept, not retrained
        else:
            results.append({**run_variant(name, base + extra, args.work, args.eval_batches),
                            "variant_overrides": extra})
            print(json.dumps(results[-1]), flush=True)
        for n in [args.steps, *args.longer]:
            if str(n) not in unigram_train:
                unigram_train[str(n)] = train_unigram(base, args.work, n, args.eval_batches)
        report = {"recipe": "recipes/elmo-tiny-en.toml", "steps": args.steps, "overrides": base, "command": command,
                  "eval": f"{args.eval_batches} held-out batches (the run's 2 % tail), full softmax, nats per token",
                  "uniform": round(math.log(results[0]["vocab_size"]), 4), "unigram_train": unigram_train,
                  "variants": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(args.work / "eval", ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
