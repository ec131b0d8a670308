"""MASS vs BART vs T5 span corruption vs no pre-training, under one encoder-decoder shape, one
tokenizer, one corpus and one pre-training budget, then the same fine-tuning budget on each
translation set, for every seed. Writes ``--evidence/compare.json`` (every run's scores and
budget), ``compare.md`` (the table) and ``compare.png`` (test BLEU and chrF, each seed a dot).

    python recipes/seq2seq_compare.py --out runs/seq2seq-compare --evidence docs/evidence/seq2seq \\
        --steps 150 --ft-steps 100 --seeds 0 1

- **Corpus:** the monolingual sides of the fine-tuning sets' *train* splits (Multi30k en and
  de, Tatoeba en and zh), each side a file of its own, so pre-training sees no sentence pair and
  no dev/test text; one unigram tokenizer (``<s>``, ``<mask>``, 100 ``<extra_id_N>``) trained on
  it serves every arm.
- **Arms:** ``t5-span``, ``bart`` (text infilling + sentence permutation) and ``mass`` on the
  same ``--preset`` shape, each pre-trained once per seed and reused for both data sets;
  ``none`` fine-tunes the same shape from random initialisation (``transfer_layers = 'none'``).
- **Budget:** equal steps x batch x ``--seq-len`` corpus tokens per arm (t5-span reads raw
  windows a little longer, so that its input is exactly ``--seq-len``). The tokens each arm's
  encoder and decoder actually process differ by design (t5-span's decoder reads about a
  quarter of the window); they are counted on the first batches and written to the JSON,
  beside a 6 x parameters x tokens FLOP estimate and the wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's sesame, not an installed one

OBJECTIVES = ("t5-span", "bart", "mass")
ARMS = (*OBJECTIVES, "none")
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>", "<mask>"] + [f"<extra_id_{i}>" for i in range(100)]
SIDES = {"multi30k": ("en", "de"), "tatoeba": ("en", "zh")}
COUNT_BATCHES = 8  # batches sampled per arm to count the encoder and decoder tokens


def mono_corpus(datasets: list[str], out: Path) -> list[str]:
    """One text file per side of each set's train split (one sentence per line)."""
    from sesame.tasks.datasets import read_split

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in datasets:
        examples = read_split(name, "train").examples
        for side, lang in zip(("source", "target"), SIDES[name]):
            path = out / f"{name}.{lang}.txt"
            if not path.is_file():
                path.write_text("".join(getattr(x, side).replace("\n", " ").strip() + "\n" for x in examples),
                                encoding="utf-8")
            files.append(str(path))
    return files


def base_sets(args, inputs: list[str]) -> list[str]:
    return [f"data.inputs={inputs!r}", f"data.seq_len={args.seq_len}", "data.doc_boundary='file'",
            "data.sentences='line'", "data.segmenter='none'", f"train.steps={args.steps}",
            f"train.batch_size={args.batch_size}", f"train.lr={args.lr}", f"train.warmup={max(1, args.steps // 10)}",
            "train.schedule='cosine'", "train.eval_every=0", "train.save_every=1000000", "train.threads=1",
            "train.log_every=25", "tokenizer.kind='unigram'", f"tokenizer.vocab_size={args.vocab_size}",
            f"tokenizer.special_tokens={SPECIALS!r}", *args.sets]


def prepare_shared(args, inputs: list[str], out: Path, say) -> tuple[str, str]:
    """The tokenizer and the prepared corpus every arm reads (built once)."""
    from sesame.config import load_config
    from sesame.pretrain import fit_model_to_tokenizer, get_corpus, get_tokenizer

    prep = out / "prep"
    prep.mkdir(parents=True, exist_ok=True)
    run = load_config(args.preset, base_sets(args, inputs))
    tok, note = get_tokenizer(run, prep, progress=False)
    run, _ = fit_model_to_tokenizer(run, tok)
    corpus = prep / "corpus"
    if not (corpus / "meta.json").is_file():
        get_corpus(run, prep, tok, progress=False)
    say(f"{note}; corpus in {corpus}")
    return str(prep / "tokenizer.json"), str(corpus)


def count_tokens(run, run_dir: Path) -> dict:
    """Non-padding encoder and decoder tokens per step, averaged over the first batches the
    trainer draws (the same batches and noise: same seed, same transform rng)."""
    from sesame.pretrain import build_task, prepare_run
    from sesame.train.trainer import transform_rng

    prep = prepare_run(run, run_dir, progress=False)
    task = build_task(prep.config, prep.tokenizer)
    enc = dec = 0
    for step in range(COUNT_BATCHES):
        batch = task.transform(prep.train.batch(step, 0, 1, 0, 1), transform_rng(run.train.seed, step, 0))
        enc += int(batch["attention_mask"].sum())
        dec += int(batch["decoder_attention_mask"].sum())
    return {"encoder_tokens_per_step": enc / COUNT_BATCHES, "decoder_tokens_per_step": dec / COUNT_BATCHES}


def flops(model, enc_tokens: float, dec_tokens: float) -> float:
    """A rough training FLOP count per step: 6 x weights x tokens, the encoder's weights (and the
    cross-attention key/value projections, which read encoder states) over encoder tokens, the
    decoder's and the LM head's over decoder tokens; embedding lookups and attention's own
    score products are left out."""
    enc = dec = 0
    for name, p in model.named_parameters():
        if name.startswith("body.encoder.") or ".cross.kv." in name:
            enc += p.numel()
        elif name.startswith(("body.decoder.", "heads.")):
            dec += p.numel()
    return 6.0 * (enc * enc_tokens + dec * dec_tokens)


def pretrain_all(args, inputs: list[str], shared: tuple[str, str], out: Path, say) -> dict:
    from sesame.config import load_config
    from sesame.models import load_model
    from sesame.pretrain import pretrain

    tok, corpus = shared
    records = {}
    for seed in args.seeds:
        for name in OBJECTIVES:
            run = load_config(args.preset, [*base_sets(args, inputs), f"objective.name={name!r}",
                                            f"tokenizer.path={tok!r}", f"data.corpus={corpus!r}", f"train.seed={seed}"])
            run_dir = out / f"pretrain-{name}-seed{seed}"
            record_path = run_dir / "compare.json"
            if record_path.is_file():  # finished before: the same command resumes where it stopped
                records[(name, seed)] = json.loads(record_path.read_text())
                continue
            start = time.perf_counter()
            summary = pretrain(run, run_dir, progress=False, say=lambda _: None, overwrite=True)
            wall = time.perf_counter() - start
            counts = count_tokens(run, run_dir)
            model, _ = load_model(run_dir / "model")
            step_flops = flops(model, counts["encoder_tokens_per_step"], counts["decoder_tokens_per_step"])
            rec = {"objective": name, "seed": seed, "model": str(run_dir / "model"), "steps": summary["steps"],
                   "batch_size": args.batch_size, "corpus_tokens_per_step": args.batch_size * args.seq_len,
                   **counts, "flops_estimate": step_flops * summary["steps"], "final_loss": summary["loss"],
                   "parameters": sum(p.numel() for p in model.parameters()), "wall_s": round(wall, 1)}
            record_path.write_text(json.dumps(rec, indent=2) + "\n")
            records[(name, seed)] = rec
            say(f"pre-trained {name} seed {seed}: loss {summary['loss']:.3f}, {wall:.0f} s")
    return records


def finetune_all(args, models: dict, out: Path, say) -> list[dict]:
    from sesame.finetune import finetune

    rows = []
    for dataset in args.datasets:
        for seed in args.seeds:
            for arm in ARMS:
                src = models[("t5-span" if arm == "none" else arm, seed)]["model"]
                run = out / f"ft-{dataset}-{arm}-seed{seed}"
                saved = run / "compare.json"
                if saved.is_file():
                    rows.append(json.loads(saved.read_text()))
                    continue
                start = time.perf_counter()
                summary = finetune(src, dataset, run, {"steps": args.ft_steps, "seed": seed, "lr": args.ft_lr,
                                                       "batch_size": args.ft_batch_size, "threads": 1, "eval_every": 0},
                                   {"max_length": args.max_length, "max_target_length": args.max_length},
                                   {"transfer_layers": "none" if arm == "none" else "all"},
                                   max_train=args.max_train, max_eval=args.max_eval, eval_split="test", progress=False,
                                   say=lambda _: None)
                scores = {split: {k: v for k, v in r["metrics"].items() if k in ("bleu", "chrf", "loss")}
                          for split, r in summary["eval"].items()}
                signatures, samples = {}, {}
                for split, r in summary["eval"].items():  # the report files hold signatures and outputs
                    report = json.loads(Path(r["files"]["json"]).read_text(encoding="utf-8"))
                    signatures[split] = {k: v["signature"] for k, v in report["details"].items()}
                    lines = Path(r["files"]["predictions"]).read_text(encoding="utf-8").splitlines()
                    samples[split] = [json.loads(x) for x in lines[:3]]
                logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
                last = [x for x in logged if "loss" in x and x.get("event") is None][-3:]
                row = {"dataset": dataset, "pretraining": arm, "seed": seed, "run": str(run), "scores": scores,
                       "signatures": signatures, "samples": samples,
                       "final_train_loss": statistics.mean(x["loss"] for x in last),
                       "distinct_test_outputs": distinct(summary["eval"]),
                       "wall_s": round(time.perf_counter() - start, 1)}
                saved.write_text(json.dumps(row, indent=2) + "\n")
                rows.append(row)
                say(f"{dataset} {arm} seed {seed}: " + json.dumps(scores.get("test", scores)))
    return rows


def distinct(evals: dict) -> int | None:
    """How many different hypotheses the test split got (1: one generic sentence for all)."""
    if "test" not in evals:
        return None
    lines = Path(evals["test"]["files"]["predictions"]).read_text(encoding="utf-8").splitlines()
    return len({json.loads(x)["hypothesis"] for x in lines})


def spread(values: list[float], digits: int = 2) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(rows: list[dict], split: str) -> str:
    lines = [f"| data set | pre-training | {split} BLEU | {split} chrF | fine-tuning train loss (last 3 logs) | "
             "per seed (BLEU / chrF) |", "|---|---|---:|---:|---:|---|"]
    for dataset in sorted({r["dataset"] for r in rows}):
        for arm in ARMS:
            runs = sorted((r for r in rows if r["dataset"] == dataset and r["pretraining"] == arm),
                          key=lambda r: r["seed"])
            if not runs:
                continue
            bleu = [100 * r["scores"][split]["bleu"] for r in runs]
            chrf = [100 * r["scores"][split]["chrf"] for r in runs]
            each = ", ".join(f"{b:.2f} / {c:.2f}" for b, c in zip(bleu, chrf))
            loss = spread([r["final_train_loss"] for r in runs], 3)
            lines.append(f"| {dataset} | {arm} | {spread(bleu)} | {spread(chrf)} | {loss} | {each} |")
    return "\n".join(lines)


def plot(rows: list[dict], split: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric in zip(axes, ("bleu", "chrf")):
        for i, dataset in enumerate(datasets):
            for j, arm in enumerate(ARMS):
                v = [100 * r["scores"][split][metric] for r in rows if r["dataset"] == dataset and
                     r["pretraining"] == arm]
                x = i + (j - 1.5) * 0.2
                ax.bar(x, statistics.mean(v), 0.18, color=f"C{j}", label=arm if i == 0 else None)
                ax.plot([x] * len(v), v, "k.", markersize=5)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_ylabel(f"{split} {'BLEU' if metric == 'bleu' else 'chrF'}")
    axes[0].legend(fontsize=8)
    fig.suptitle("seq2seq pre-training objectives, fine-tuned (bars: mean over seeds; dots: seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run directories (large)")
    p.add_argument("--evidence", required=True, help="where compare.json, compare.md and compare.png go")
    p.add_argument("--preset", default="t5-tiny")
    p.add_argument("--steps", type=int, default=150, help="pre-training steps per objective and seed")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--ft-steps", type=int, default=100)
    p.add_argument("--ft-batch-size", type=int, default=32)
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--max-length", type=int, default=32, help="source and target tokens when fine-tuning")
    p.add_argument("--datasets", nargs="+", default=["multi30k", "tatoeba"], choices=sorted(SIDES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--max-train", type=int)
    p.add_argument("--max-eval", type=int, default=200, help="test sentences scored (a fixed-seed subset)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="more overrides for every pre-training run (model.*, objective.options.*, ...)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out, evidence = Path(args.out), Path(args.evidence)
    out.mkdir(parents=True, exist_ok=True)
    evidence.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    inputs = mono_corpus(args.datasets, out / "mono")
    shared = prepare_shared(args, inputs, out, print)
    models = pretrain_all(args, inputs, shared, out, print)
    rows = finetune_all(args, models, out, print)
    split = "test" if all("test" in r["scores"] for r in rows) else "dev"
    md = table(rows, split)
    print(md)
    plot(rows, split, evidence / "compare.png")
    pre = [models[k] for k in sorted(models)]
    result = {"command": "python recipes/seq2seq_compare.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "args": vars(args), "split": split, "corpus": inputs, "pretraining": pre, "rows": rows,
              "table": md, "wall_s": round(time.perf_counter() - start, 1), "threads": 1}
    (evidence / "compare.md").write_text(md + "\n")
    (evidence / "compare.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
