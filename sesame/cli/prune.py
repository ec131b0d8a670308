"""`sesame prune MODEL --dataset NAME --method ...`: magnitude, head and layer pruning, LayerDrop, Theseus."""
from __future__ import annotations

import argparse

from sesame.cli.compress_args import add_common, print_eval, settings

SECTIONS = ("prune", "train", "successor_train")
EPILOG = """methods:
  magnitude  fine-tune while pruning the smallest weights to --sparsity (gradual cubic schedule,
             --scope global | layer; --set prune.every/start/end); masks saved as masks.safetensors
  heads      remove the --heads N (or --fraction F) least important attention heads (gradient of the
             loss w.r.t. a head mask, Michel et al.), physically; no training
  layers     remove the --remove N layers whose removal raises the training loss least; no training
  layerdrop  fine-tune with LayerDrop at --rate, then keep every other layer (reports each depth)
  theseus    BERT-of-Theseus: replace groups of layers by a --layers N successor with probability
             --p (+ --p-rate per step), then fine-tune the successor alone (--set successor_train.*)

examples:
  sesame prune runs/ft-sst2/model --dataset sst2 --method magnitude --sparsity 0.9 --out runs/mag90
  sesame prune runs/ft-sst2/model --dataset sst2 --method heads --fraction 0.5 --out runs/heads50
  sesame prune runs/ft-sst2/model --dataset sst2 --method theseus --layers 3 --out runs/theseus3"""


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help="prune a fine-tuned model (magnitude, heads, layers, LayerDrop, Theseus)",
                       description="Make a fine-tuned MODEL smaller on a labeled data set; the result goes to "
                                   "OUT/model.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="the fine-tuned model directory")
    p.add_argument("--dataset", required=True, help="the labeled data set (see sesame finetune --help)")
    p.add_argument("--method", required=True, choices=["magnitude", "heads", "layers", "layerdrop", "theseus"])
    p.add_argument("--sparsity", type=float, help="magnitude: final sparsity (default 0.5)")
    p.add_argument("--scope", choices=["global", "layer"], help="magnitude: one threshold or one per matrix")
    p.add_argument("--heads", type=int, help="heads: how many heads to remove")
    p.add_argument("--fraction", type=float, help="heads: the fraction of all heads to remove")
    p.add_argument("--remove", type=int, help="layers: how many layers to remove")
    p.add_argument("--rate", type=float, default=0.2, help="layerdrop: the drop rate in training (default 0.2)")
    p.add_argument("--layers", type=int, help="theseus: successor depth")
    p.add_argument("--p", type=float, default=0.5, help="theseus: replacing probability (default 0.5)")
    p.add_argument("--p-rate", type=float, default=0.0, help="theseus: linear curriculum, p grows by this per step")
    add_common(p, SECTIONS)
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from sesame.compress import prune, replace
    from sesame.compress.run import claim_out
    from sesame.errors import ConfigError

    s = settings(args, SECTIONS)
    out = claim_out(Path(args.out or Path("runs") / f"prune-{args.method}-{args.dataset}"), args.overwrite)
    common = dict(max_train=args.max_train, max_eval=args.max_eval, data_dir=args.data_dir)
    m = args.method
    if m == "magnitude":
        cfg = {**s["prune"], **{k: v for k, v in (("sparsity", args.sparsity), ("scope", args.scope)) if v is not None}}
        r = prune.magnitude(args.model_dir, args.dataset, out, cfg, s["train"], progress=not args.no_progress, **common)
        print(f"sparsity {r['sparsity']['overall']:.3f} overall; per layer: "
              + ", ".join(f"{k} {v:.3f}" for k, v in r["sparsity"]["layers"].items()))
    elif m == "heads":
        r = prune.heads(args.model_dir, args.dataset, out, args.heads, args.fraction, **common)
        print(f"removed {r['count']} of {r['of']} heads; heads per layer now {r['head_counts']}")
    elif m == "layers":
        if args.remove is None:
            raise ConfigError("--method layers needs --remove N")
        r = prune.layers(args.model_dir, args.dataset, out, args.remove, **common)
        print(f"removed layers {r['removed']}, kept {r['kept']}")
    elif m == "layerdrop":
        r = replace.layerdrop(args.model_dir, args.dataset, out, args.rate, s["train"], progress=not args.no_progress,
                              **common)
        for name, d in r["depths"].items():
            print_eval(f"layers {name}", d["eval"])
    else:
        if args.layers is None:
            raise ConfigError("--method theseus needs --layers N (the successor's depth)")
        r = replace.theseus(args.model_dir, args.dataset, out, args.layers, args.p, args.p_rate, s["train"],
                            s["successor_train"] or None, progress=not args.no_progress, **common)
    if "eval" in r:
        print_eval("pruned", r["eval"])
    if "size" in r:
        print(f"parameters: {r['size']['parameters']:,} ({r['size']['nonzero_parameters']:,} non-zero)")
    print(f"model: {r['model_dir']}; summary: {out / 'summary.json'}")
    return 0
