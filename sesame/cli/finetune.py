"""`sesame finetune MODEL_DIR --train FILE --task TASK` (a user's files) or `--dataset NAME`
(a named set): fine-tune with a transfer strategy."""
from __future__ import annotations

import argparse
import json

SECTIONS = ("train", "task", "strategy")


def _epilog() -> str:
    from sesame.finetune import DATASETS

    rows = [f"  {name:<13} {spec.task:<15} {spec.note}" for name, spec in DATASETS.items()]
    return "\n".join([
        "your files: --train FILE [--dev FILE] [--test FILE] --task TASK, read as CSV (RFC 4180), TSV, JSONL,",
        "JSON (records; SQuAD layout for qa), CoNLL columns (tagging: -DOCSTART-, blank-line sentences,",
        "BIO/IOB1/IOBES read as BIO) or Parquet (with pyarrow), by extension or --format. Columns are found by",
        "common names (text, sentence, label, tokens, tags, question, context, answers, source, target, ...) or",
        "named with the --*-column options (a name, or a 0-based index with --no-header). Labels come from",
        "train; without --dev a fixed-seed --dev-fraction of train is held out; a --test file without labels",
        "gets predictions only (eval/test-predictions.jsonl).", "",
        "named data sets (presets over the same readers; root: --data-dir, else $SESAME_DATA, else",
        "../shared/data from the current directory):", *rows, "",
        "strategies: full (default) | frozen (feature-based: heads and mix train) | adapters (bottleneck",
        "adapters + heads + norms train). Combine with --scalar-mix, --transfer-layers, --gradual-unfreeze,",
        "--layer-lr-decay. Defaults: 3 epochs, batch 32, 10% warmup, lr 5e-5 (hidden >= 512), 1e-4 (>= 256),",
        "5e-4 (smaller), 1e-3 for frozen/adapters. The run directory gets config.toml, metrics.jsonl,",
        "eval/ reports, summary.json and model/ (with tokenizer.json and labels.json).", "",
        "examples:",
        "  sesame finetune runs/bert/model --train reviews.csv --task classification --text-column review \\",
        "      --label-column stars --out runs/reviews --class-weights balanced",
        "  sesame finetune runs/bert/model --train ner/train.conll --dev ner/dev.conll --task tagging",
        "  sesame finetune --init random --preset bert-tiny --tokenizer runs/bert/model/tokenizer.json \\",
        "      --train reviews.csv --task classification   # the no-pre-training baseline, no model folder",
        "  sesame finetune runs/bert/model --dataset sst2 --out runs/ft-sst2 --set train.steps=500",
        "  sesame finetune runs/bert/model --dataset conll2003 --out runs/ner --strategy adapters --adapter-size 32",
        "  sesame finetune runs/bert/model --dataset sst2 --out runs/mix --strategy frozen --scalar-mix",
        "  sesame finetune runs/elmo-tiny-en/model --dataset conll2003 --out runs/elmo-ner --strategy frozen \\",
        "      --scalar-mix --task-encoder bilstm   # ELMo features into a task BiLSTM",
        "  sesame finetune runs/w2v/vectors.bin --dataset sst2 --out runs/w2v-sst2 --strategy frozen \\",
        "      --task-encoder bilstm   # the static-vector baseline (word2vec .txt/.bin or a vectors folder)",
        "  sesame finetune runs/bert/model --dataset mrpc --then sst2 --out runs/two-stage",
        "  sesame finetune runs/bert/model --dataset sst2 --also cola mrpc --out runs/mtl",
    ])


def add_parser(sub) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a model on a labeled data set (full, frozen, adapters, multi-task, ...)",
        description="Fine-tune MODEL_DIR (a sesame model directory or a Hugging Face one) on your labeled\n"
                    "files (--train) or a named data set (--dataset), evaluate it on dev (and test when\n"
                    "there is one), and save the fine-tuned model to OUT/model, ready for `sesame eval`,\n"
                    "the inference verbs and sesame.pipeline.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", nargs="?", help="the pre-trained model: runs/NAME/model, a training checkpoint "
                   "(runs/NAME/checkpoints/step-N), a Hugging Face folder, or static word vectors (a word2vec "
                   ".txt/.bin file or a `sesame static train` folder: the static-feature baseline; none with "
                   "--init random)")
    p.add_argument("--dataset", help="a named data set to fine-tune on (see the list below)")
    add_file_options(p, train=True)
    p.add_argument("--out", help="run directory (default: runs/ft-<data set or train file name>)")
    p.add_argument("--init", choices=["pretrained", "random"], default="pretrained",
                   help="random: a random init of --preset with --tokenizer, no model directory (the baseline; "
                        "see also --transfer-layers none)")
    p.add_argument("--preset", help="with --init random: the model preset (bert-tiny, bert-base, ...)")
    p.add_argument("--tokenizer", help="with --init random: a tokenizer file or folder (tokenizer.json, vocab.txt)")
    p.add_argument("--config", help="a TOML file with [train], [task] and [strategy] sections")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a train, task or strategy setting, e.g. --set train.steps=500 "
                        "--set task.max_length=64 (repeatable)")
    g = p.add_argument_group("transfer strategy")
    g.add_argument("--strategy", choices=["full", "frozen", "adapters"],
                   help="what trains: everything (full), only the heads (frozen), adapters + heads (adapters)")
    g.add_argument("--adapter-size", type=int, help="bottleneck width of the adapters (default 64)")
    g.add_argument("--scalar-mix", action="store_true", help="heads read an ELMo-style learned mix of all layers")
    g.add_argument("--mix-norm", action="store_true",
                   help="layer-normalise each layer before the scalar mix (for layers of different scales, ELMo's)")
    g.add_argument("--task-encoder", choices=["none", "bilstm", "bag"],
                   help="the task model over the features: a BiLSTM or a bag of vectors (feature-based transfer; "
                        "the same on ELMo, Transformer and static-vector features)")
    g.add_argument("--task-hidden", type=int, help="units per direction of the task BiLSTM (default 128)")
    g.add_argument("--task-embedding", type=int,
                   help="size of the task's own token embedding, concatenated with the features (default 0)")
    g.add_argument("--transfer-layers", choices=["all", "embeddings", "top", "none"],
                   help="which pre-trained layers transfer: all (default), embeddings only (blocks re-initialised), "
                        "top (the task reads the top layer only), none (random init of the same architecture: "
                        "the baseline that shows what pre-training is worth)")
    g.add_argument("--gradual-unfreeze", action="store_true",
                   help="unfreeze one layer group per epoch, top to bottom (ULMFiT)")
    g.add_argument("--layer-lr-decay", type=float,
                   help="discriminative learning rates: block l of L learns at lr * decay^(L-l) (e.g. 0.9)")
    d = p.add_argument_group("data and runs")
    d.add_argument("--max-train", type=int, help="train on at most N examples (a fixed-seed subset)")
    d.add_argument("--max-eval", type=int, help="evaluate on at most N examples per split")
    d.add_argument("--eval-split", default="dev", help="split evaluated during and after training (default dev)")
    d.add_argument("--data-dir", help="root of the named sets (default: $SESAME_DATA, else ../shared/data)")
    d.add_argument("--then", metavar="DATASET|train=FILE,task=TASK,...",
                   help="two-stage: fully fine-tune on --dataset or --train first (the intermediate task), then "
                        "on a named set or a file stage, e.g. train=ner.conll,task=tagging,tags-column=3 (keys: "
                        "train, dev, test, task, ROLE-column, format, delimiter, header, dev-fraction; a value "
                        "with a comma in double quotes: 'train=\"my, data.csv\",task=classification')")
    d.add_argument("--also", nargs="+", metavar="DATASET|train=FILE,task=TASK,...",
                   help="multi-task: train --dataset (or --train) and these together, one shared encoder, one head "
                        "each; each a named set or a file stage as for --then")
    d.add_argument("--mix", choices=["proportional", "round_robin"], default="proportional",
                   help="multi-task batch schedule (default: tasks drawn in proportion to their sizes)")
    d.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def add_file_options(p, train: bool = False) -> None:
    """The options that say how to read a user's labeled file (finetune, eval, inference verbs)."""
    from sesame.tasks.files import TASKS
    from sesame.tasks.tables import FORMATS

    f = p.add_argument_group("your files (column options take a name, or a 0-based index)")
    if train:
        f.add_argument("--train", metavar="FILE", help="training file")
        f.add_argument("--dev", metavar="FILE", help="dev file (default: --dev-fraction of train)")
        f.add_argument("--test", metavar="FILE", help="test file (without labels: predictions only)")
        f.add_argument("--dev-fraction", type=float, default=0.1,
                       help="without --dev: the fraction of train held out as dev, fixed seed (default 0.1)")
        f.add_argument("--class-weights", choices=["balanced"], help="weigh the loss by inverse class frequency")
        f.add_argument("--unk-warn", type=float, default=0.05, metavar="FRACTION",
                       help="warn when more than this fraction of the tokens are [UNK] (default 0.05)")
    if not any(a.dest == "task" for a in p._actions):
        f.add_argument("--task", choices=[k for k in TASKS if "_" not in k], help="what the file is for")
    f.add_argument("--format", choices=FORMATS, help="file format (default: from the extension)")
    for role, text in (("text", "the text"), ("text-pair", "the second text of a pair"), ("label", "the label"),
                       ("tokens", "tagging: the tokens (CoNLL: column index, default 0)"),
                       ("tags", "tagging: the tags (CoNLL: column index, default -1)"),
                       ("question", "qa: the question"), ("context", "qa / multiple choice: the context"),
                       ("answers", "qa: the answers"), ("options", "multiple choice: the options"),
                       ("source", "seq2seq: the source"), ("target", "seq2seq: the target"), ("id", "example ids")):
        f.add_argument(f"--{role}-column", metavar="NAME|INDEX", help=text)
    f.add_argument("--delimiter", help="field delimiter (CSV: ',', TSV: tab; CoNLL: whitespace)")
    f.add_argument("--no-header", action="store_true", help="the file has no header row (columns by index)")
    f.add_argument("--strict", action="store_true", help="refuse invalid UTF-8 instead of replacing it (counted)")


def file_args(args) -> tuple[dict, dict]:
    """(columns, data) from the file options."""
    roles = ("text", "text_pair", "label", "tokens", "tags", "question", "context", "answers", "options",
             "source", "target", "id")
    columns = {r: _index(getattr(args, f"{r}_column")) for r in roles if getattr(args, f"{r}_column", None)}
    if "options" in columns and isinstance(columns["options"], str) and "," in columns["options"]:
        columns["options"] = [_index(c) for c in columns["options"].split(",")]
    data = {"format": args.format, "delimiter": _delimiter(args.delimiter), "header": not args.no_header or None,
            "strict": args.strict or None}
    if args.no_header:
        data["header"] = False
    return columns, {k: v for k, v in data.items() if v is not None}


STAGE_KEYS = ("train", "dev", "test", "task", "name", "format", "delimiter", "header", "dev-fraction")


def stage_arg(text: str) -> dict:
    """A --then / --also stage: a named set (``sst2``) or one line of file options,
    ``train=FILE,task=TASK[,dev=FILE][,test=FILE][,ROLE-column=C][,format=F][,delimiter=D]
    [,header=false][,dev-fraction=X][,name=N]`` (``name`` names a multi-task head, default
    the file's stem). A value holding a comma goes in double quotes, a quote inside it
    doubled as in CSV: ``train="reviews, 2024.csv",delimiter=","``."""
    from sesame.config.base import closest
    from sesame.errors import ConfigError

    if "=" not in text:
        return text
    roles = ("text", "text-pair", "label", "tokens", "tags", "question", "context", "answers", "options", "source",
             "target", "id")
    stage: dict = {"columns": {}, "data": {}}
    for item in split_stage(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not value:
            raise ConfigError(f"stage item {item!r} is not KEY=VALUE (e.g. train=dev.tsv,task=classification)")
        if key.endswith("-column") and key[: -len("-column")] in roles:
            stage["columns"][key[: -len("-column")].replace("-", "_")] = _index(value)
        elif key in ("train", "dev", "test", "task", "name"):
            stage[key] = value
        elif key == "dev-fraction":
            stage["dev_fraction"] = float(value)
        elif key == "header":
            stage["data"]["header"] = value.lower() not in ("false", "no", "0")
        elif key in ("format", "delimiter"):
            stage["data"][key] = _delimiter(value) if key == "delimiter" else value
        else:
            known = [*STAGE_KEYS, *(f"{r}-column" for r in roles)]
            raise ConfigError(f"a stage has no key {key!r}{closest(key, known)}; keys: {', '.join(known)}")
    if "train" not in stage or "task" not in stage:
        raise ConfigError(f"a file stage needs train=FILE and task=TASK, got {text!r}")
    return stage


def split_stage(text: str) -> list[str]:
    """``text``'s KEY=VALUE items: split at commas outside double quotes; the quotes are
    dropped and ``""`` inside them is one quote (CSV's rule)."""
    from sesame.errors import ConfigError

    items, item, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and text[i + 1:i + 2] == '"':
                item.append('"')
                i += 1
            else:
                quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(item))
            item = []
        else:
            item.append(ch)
        i += 1
    if quoted:
        raise ConfigError(f'stage {text!r} has an unclosed double quote; quote a whole value: train="a, b.csv"')
    return [*items, "".join(item)]


def _index(value: str):
    return int(value) if value.lstrip("-").isdigit() else value


def _delimiter(value: str | None) -> str | None:
    return {"\\t": "\t", "tab": "\t"}.get(value, value) if value is not None else None


def settings(args) -> dict[str, dict]:
    """{train, task, strategy} from --config, then --set, then the strategy flags."""
    from sesame.config.base import closest
    from sesame.config.run import load_dict, parse_override
    from sesame.errors import ConfigError

    data = load_dict(args.config) if args.config else {}
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"unknown section [{key}]{closest(key, SECTIONS)} in {args.config}; "
                              f"fine-tuning reads {', '.join(SECTIONS)}")
    out = {s: dict(data.get(s) or {}) for s in SECTIONS}
    for text in args.overrides:
        path, value = parse_override(text)
        if path[0] not in SECTIONS or len(path) != 2:
            raise ConfigError(f"--set {text!r}: fine-tuning takes train.KEY, task.KEY or strategy.KEY"
                              f"{closest(path[0], SECTIONS)}")
        out[path[0]][path[1]] = value
    flags = {"kind": args.strategy, "adapter_size": args.adapter_size, "transfer_layers": args.transfer_layers,
             "layer_lr_decay": args.layer_lr_decay, "scalar_mix": args.scalar_mix or None,
             "scalar_mix_norm": args.mix_norm or None,
             "gradual_unfreeze": args.gradual_unfreeze or None, "task_encoder": args.task_encoder,
             "task_hidden": args.task_hidden, "task_embedding": args.task_embedding}
    out["strategy"].update({k: v for k, v in flags.items() if v is not None})
    return out


def run(args) -> int:
    from pathlib import Path

    from sesame import finetune as ft
    from sesame.errors import ConfigError
    from sesame.outputs import claim_run_dir
    from sesame.transfer import StrategyConfig

    if args.then and args.also:
        raise ConfigError("give --then (two-stage) or --also (multi-task), not both")
    if bool(args.dataset) == bool(args.train):
        raise ConfigError("give your training file (--train FILE --task TASK) or a named set (--dataset NAME)")
    if args.init == "pretrained" and not args.model_dir:
        raise ConfigError("give MODEL_DIR, or --init random --preset NAME --tokenizer FILE")
    if args.init == "random" and args.model_dir:
        raise ConfigError("--init random builds the model from --preset; drop MODEL_DIR")
    s = settings(args)
    strategy = StrategyConfig.from_dict(s["strategy"])
    name = args.dataset or Path(args.train).stem
    out = claim_run_dir(Path(args.out or Path("runs") / f"ft-{name}"), args.resume)
    common = dict(progress=not args.no_progress, data_dir=args.data_dir, max_eval=args.max_eval, resume=args.resume)
    columns, data = file_args(args)
    first = args.dataset or dict(train=args.train, dev=args.dev, test=args.test, task=args.task, columns=columns,
                                 data=data, dev_fraction=args.dev_fraction)
    if args.also:
        stages = [first, *(stage_arg(a) for a in args.also)]
        names = [st if isinstance(st, str) else Path(st["train"]).stem for st in stages]
        summary = ft.multitask(args.model_dir, stages, out, s["train"], strategy, args.max_train, args.mix,
                               options={n: s["task"] for n in names}, **common)
        results = {name: t["eval"] for name, t in summary["tasks"].items()}
    elif args.then:
        second = stage_arg(args.then)
        summary = ft.two_stage(args.model_dir, first, second, out, s["train"], strategy,
                               options=s["task"], max_train=args.max_train, eval_split=args.eval_split, **common)
        results = {f"stage1 {name}": summary["stage1"]["eval"],
                   f"stage2 {Path(second['train']).stem if isinstance(second, dict) else second}":
                   summary["stage2"]["eval"]}
    else:
        files = dict(train=args.train, dev=args.dev, test=args.test, task=args.task, columns=columns, data=data,
                     dev_fraction=args.dev_fraction, class_weights=args.class_weights) if args.train else {}
        summary = ft.finetune(args.model_dir, args.dataset, out, s["train"], s["task"], strategy, args.max_train,
                              args.eval_split, init=args.init, preset=args.preset, tokenizer=args.tokenizer,
                              unk_threshold=args.unk_warn, **files, **common)
        results = {name: summary["eval"]}
    t = summary.get("trainable") or summary["stage2"]["trainable"]
    print(f"trainable parameters: {t['trainable']:,} of {t['total']:,} ({t['fraction']:.2%})")
    for name, splits in results.items():
        for split, r in splits.items():
            if r["metrics"] is None:
                print(f"{name} {split} ({r['examples']} examples, no labels): predictions in "
                      f"{r['files']['predictions']}")
            else:
                print(f"{name} {split} ({r['examples']} examples): {json.dumps(r['metrics'])}")
    print(f"model: {summary.get('model_dir') or out / 'models'}; summary: {out / 'summary.json'}")
    return 0
