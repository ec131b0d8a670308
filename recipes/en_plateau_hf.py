"""The English MLM plateau, checked against `transformers` (issue 11): HF's
``BertForMaskedLM`` and sesame's BERT, from the same weights (learned absolute
positions), and sesame's BERT with rotary positions, all trained on the same
corrupted batches of ``recipes/bert-tiny-en.toml``'s corpus with the same optimizer
(AdamW, linear warm-up and decay, clipping at 1.0), and scored on the same held-out
masked batches.

Run from the repository root:  python recipes/en_plateau_hf.py [--steps 1000]
Writes docs/evidence/en-plateau/hf-same-batches.json (the corpus goes to --work)."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def optimizer(model, lr: float, steps: int, warmup: int):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    return opt, sched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--work", default="runs/en-plateau-hf")
    ap.add_argument("--out", default="docs/evidence/en-plateau/hf-same-batches.json")
    args = ap.parse_args()
    import transformers

    from sesame.config import load_config
    from sesame.models.hf import to_hf
    from sesame.pretrain import build_task, prepare_run

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sets = ["model.position=learned", "data.workers=1", "train.eval_every=1", f"train.lr={args.lr}"]
    run = load_config("recipes/bert-tiny-en.toml", sets)
    prep = prepare_run(run, args.work, progress=False)
    task = build_task(prep.config, prep.tokenizer)
    ours = task.build(prep.config.model)
    rotary = build_task(prep.config, prep.tokenizer).build(prep.config.model.replace(position="rotary"))
    with tempfile.TemporaryDirectory() as tmp:
        to_hf(ours.model, tmp)
        hf = transformers.BertForMaskedLM.from_pretrained(tmp, attn_implementation="eager")
    arms = {"transformers BertForMaskedLM, learned positions": hf,
            "sesame BERT, learned positions (same weights)": ours,
            "sesame BERT, rotary positions": rotary}

    def loss_of(name, model, batch):
        if model is hf:
            return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                         token_type_ids=batch.get("token_type_ids"), labels=batch["labels"]).loss, None
        out = model(batch)
        return out.loss / out.count, out.metrics["accuracy"]

    eval_batches = []
    for i in range(min(20, prep.eval.steps_per_epoch)):  # the trainer's train.eval_batches default
        raw = prep.eval.batch(i, 0, 1, 0, 1)
        eval_batches.append(task.transform(raw, np.random.default_rng(10_000 + i)))

    @torch.no_grad()
    def evaluate(model) -> dict:
        model.eval()
        correct = total = 0
        loss = 0.0
        for b in eval_batches:
            select = b["labels"] != -100
            if model is hf:
                logits = model(input_ids=b["input_ids"], attention_mask=b.get("attention_mask"),
                               token_type_ids=b.get("token_type_ids")).logits[select]
            else:
                logits = model.model(b["input_ids"], b.get("attention_mask"), b.get("token_type_ids"),
                                     select=select).logits["mlm"]
            y = b["labels"][select]
            loss += float(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
            total += int(y.numel())
        model.train()
        return {"eval_loss": loss / total, "eval_accuracy": correct / total, "eval_targets": total}

    opts = {name: optimizer(m, args.lr, args.steps, args.warmup) for name, m in arms.items()}
    curves = {name: [] for name in arms}
    seconds = dict.fromkeys(arms, 0.0)
    for m in arms.values():
        m.train()
    for step in range(1, args.steps + 1):
        raw = prep.train.batch(step - 1, 0, 1, 0, 1)
        batch = task.transform(raw, np.random.default_rng(step))
        for name, model in arms.items():
            t0 = time.process_time()
            opt, sched = opts[name]
            loss, _ = loss_of(name, model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            seconds[name] += time.process_time() - t0
            if step % args.eval_every == 0 or step == 1:
                curves[name].append({"step": step, "train_loss": float(loss.detach()), **evaluate(model)})
        if step % args.eval_every == 0:
            print(f"step {step} held-out accuracy: " + "; ".join(
                f"{n} {c[-1]['eval_accuracy']:.3f}" for n, c in curves.items()), flush=True)
    result = {"command": "python recipes/en_plateau_hf.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("work", "out")),
              "recipe": "recipes/bert-tiny-en.toml", "batch_size": prep.config.train.batch_size,
              "seq_len": prep.config.data.seq_len, "lr": args.lr, "warmup": args.warmup, "steps": args.steps,
              "eval_batches": len(eval_batches), "cpu_seconds": seconds, "curves": curves}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
