"""`sesame quantize MODEL --dataset NAME --method dynamic|static|qat --check`: int8 with an accuracy check."""
from __future__ import annotations

import argparse

from sesame.cli.compress_args import add_common, print_eval, settings

SECTIONS = ("train",)
EPILOG = """methods: dynamic (int8 weights, activations quantized per batch), static (activation scales
calibrated on --calibration training examples), qat (fine-tune with fake-quant, then convert).
All run torch's int8 x int8 kernels (x86/fbgemm) for every linear layer.

--check evaluates the fp32 and the int8 model on the dev (and test) split and prints both.
An int8 model cannot be saved: sesame's safetensors format would lose its scales and packed weights;
--out is for qat, where OUT/model holds the float weights trained with fake-quant (quantize them on load).

examples:
  sesame quantize runs/ft-sst2/model --dataset sst2 --method dynamic --check
  sesame quantize runs/ft-sst2/model --dataset sst2 --method qat --out runs/qat --set train.steps=200 --check"""


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="int8-quantize a fine-tuned model and compare its metric with fp32",
                       description="Quantize a fine-tuned MODEL to int8 (dynamic, static or QAT) and check it.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="the fine-tuned model directory")
    p.add_argument("--dataset", required=True, help="the labeled data set to calibrate, train or check on")
    p.add_argument("--method", required=True, choices=["dynamic", "static", "qat"])
    p.add_argument("--check", action="store_true", help="report the task metric of fp32 and int8 side by side")
    p.add_argument("--calibration", type=int, default=256, help="static: calibration examples (default 256)")
    add_common(p, SECTIONS)
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.compress.quantize import quantize
    from sesame.compress.run import claim_out
    from sesame.errors import CheckpointError

    if args.out and args.method != "qat":
        raise CheckpointError(f"a {args.method}-quantized model cannot be saved: sesame's safetensors format would "
                              "lose its int8 scales and packed weights; keep the float model and quantize on load "
                              "(drop --out)")
    if args.out:
        claim_out(args.out, args.overwrite)
    s = settings(args, SECTIONS)
    r = quantize(args.model_dir, args.dataset, args.method, args.out, calibration=args.calibration,
                 train=s["train"], max_train=args.max_train, max_eval=args.max_eval, data_dir=args.data_dir,
                 progress=not args.no_progress, check=args.check)
    if args.check:
        print_eval("fp32", r["fp32"])
        print_eval("int8", r["int8"])
        print("change in " + r["metric"] + ": " + ", ".join(f"{k} {v:+.4f}" for k, v in r["delta"].items()))
    print(f"tensor bytes: fp32 {r['bytes']['fp32']:,}, int8 {r['bytes']['int8']:,}")
    if r.get("model_dir"):
        print(f"float QAT model: {r['model_dir']}")
    return 0
