"""`sesame static train | eval | similar | analogy`: word2vec, GloVe and fastText vectors."""
from __future__ import annotations

import json
from pathlib import Path

WORDSIM = "../shared/data/wordsim/eval-word-vectors"
ANALOGIES = "../shared/data/wordsim/questions-words.txt"


def add_parser(sub) -> None:
    parser = sub.add_parser("static", help="train and query static word vectors (word2vec, GloVe, fastText)",
                            description="Train word2vec (skip-gram / CBOW), GloVe or fastText vectors on text, "
                                        "evaluate them on word similarity and analogies, or query them.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    tr = actions.add_parser(
        "train", help="train vectors on text files, directories or globs",
        description="Read the inputs with the readers of `sesame data prepare` (text, JSONL, TSV, word/tag, "
                    "CoNLL), split them into words (Chinese: gold words of word/tag input, else jieba), and "
                    "train. Writes vectors.safetensors + vocab.json, vectors.txt and vectors.bin (word2vec "
                    "formats) under --out. Running the same command again resumes a stopped run.",
        epilog="example: sesame static train corpora/en --method word2vec --arch cbow --out runs/w2v")
    tr.add_argument("inputs", nargs="+", metavar="INPUT", help="text files, directories or glob patterns")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--method", choices=("word2vec", "glove", "fasttext"))
    tr.add_argument("--arch", choices=("sg", "cbow"), help="skip-gram or CBOW (word2vec, fastText)")
    tr.add_argument("--loss", choices=("ns", "hs"), help="negative sampling or hierarchical softmax")
    tr.add_argument("--dim", type=int, help="vector size (default 100)")
    tr.add_argument("--window", type=int, help="maximum context distance (default 5)")
    tr.add_argument("--epochs", type=int, help="passes over the corpus (default 5)")
    tr.add_argument("--min-count", type=int, help="drop words seen fewer times (default 5)")
    tr.add_argument("--negative", type=int, help="noise words per pair (default 5)")
    tr.add_argument("--sample", type=float, help="subsampling threshold t (default 1e-3; 0 off)")
    tr.add_argument("--lr", type=float, help="start learning rate")
    tr.add_argument("--segmenter", choices=("auto", "jieba", "gold", "none"), help="Chinese words")
    tr.add_argument("--format", choices=("auto", "text", "jsonl", "tsv", "tagged", "conll"), help="input format")
    tr.add_argument("--config", help="a TOML file with a [static] section, or a preset: word2vec-sg, "
                                     "word2vec-cbow, glove, fasttext")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="static.KEY=VALUE",
                    help="override a setting, e.g. --set static.buckets=200000 (repeatable)")
    tr.add_argument("--stop-after-words", type=int, help="pause (checkpoint written) after this many words")
    tr.add_argument("--overwrite", action="store_true", help="replace an earlier run with other settings in --out")
    tr.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    tr.add_argument("--workers", type=int, help="word2vec/fastText: Hogwild processes on shared vectors (default 1; "
                    "1 is bit-reproducible and resumes exactly, more are faster but NOT bit-reproducible)")
    tr.add_argument("--shared-negatives", type=int, metavar="K",
                    help="K noise words per batch shared by its pairs, weighted negative/K (default 0: "
                    "`negative` per pair, as word2vec; 16 is 2-4x faster, see docs/static.md)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(run=run_train)

    ev = actions.add_parser("eval", help="word similarity (Spearman rho) and analogy accuracy",
                            description="Spearman's rho on every word-similarity set in --wordsim (with OOV "
                                        "counts), and analogy accuracy on --analogies by 3CosAdd and 3CosMul "
                                        "over the --restrict most frequent words, per section.")
    ev.add_argument("vectors", help="a vectors directory (run --out) or a word2vec .txt/.bin file")
    ev.add_argument("--wordsim", default=WORDSIM, help=f"folder of 'word1 word2 score' sets (default {WORDSIM})")
    ev.add_argument("--analogies", default=ANALOGIES, help=f"questions-words.txt (default {ANALOGIES})")
    ev.add_argument("--restrict", type=int, default=30000, help="analogy vocabulary: most frequent N (default 30000)")
    ev.add_argument("--json", action="store_true", help="print the full JSON result")
    ev.set_defaults(run=run_eval)

    si = actions.add_parser("similar", help="nearest words by cosine", description="The nearest words to WORD.")
    si.add_argument("word")
    si.add_argument("--vectors", required=True, help="a vectors directory or word2vec file")
    si.add_argument("--topn", type=int, default=10)
    si.set_defaults(run=run_similar)

    an = actions.add_parser("analogy", help="A : B :: C : ? by 3CosAdd",
                            description="The words nearest to B - A + C (unit vectors), A, B and C excluded.")
    an.add_argument("a")
    an.add_argument("b")
    an.add_argument("c")
    an.add_argument("--vectors", required=True, help="a vectors directory or word2vec file")
    an.add_argument("--topn", type=int, default=5)
    an.set_defaults(run=run_analogy)

    tf = actions.add_parser(
        "transfer", help="initialise a Transformer's token embedding from static vectors",
        description="Align static vectors to a tokenizer's vocabulary (exact words; fastText n-grams; else the "
                    "count-weighted mean of the words whose tokenization holds the token), copy them into the "
                    "model's token embedding (rescaled to its initial spread) and save the model directory, "
                    "with the coverage report in static-transfer.json.",
        epilog="example: sesame static transfer runs/w2v --config bert-tiny --tokenizer tok/tokenizer.json "
               "--set model.embedding_size=100 --out models/bert-tiny-w2v")
    tf.add_argument("vectors", help="a vectors directory or word2vec file")
    tf.add_argument("--out", required=True, help="the new model directory")
    src = tf.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a sesame model directory to start from")
    src.add_argument("--config", help="or a fresh model: a TOML config or preset name ([model] section)")
    tf.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="with --config: override a field, e.g. --set model.embedding_size=100")
    tf.add_argument("--tokenizer", help="tokenizer file or directory (default: the model directory's)")
    tf.add_argument("--no-rescale", action="store_true", help="copy the vectors at their own scale")
    tf.set_defaults(run=run_transfer)


def run_train(args) -> int:
    from sesame.static.config import load_static_config
    from sesame.static.train import train_static

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = load_static_config(args.config, args.overrides, method=args.method, arch=args.arch, loss=args.loss,
                             dim=args.dim, window=args.window, epochs=args.epochs, min_count=args.min_count,
                             negative=args.negative, sample=args.sample, lr=args.lr, segmenter=args.segmenter,
                             format=args.format, workers=args.workers, shared_negatives=args.shared_negatives)
    summary = train_static(args.inputs, args.out, cfg, progress=not args.no_progress, overwrite=args.overwrite,
                           stop_after_words=args.stop_after_words)
    print(json.dumps(summary, indent=1))
    return 0


def run_eval(args) -> int:
    from sesame.errors import DataError
    from sesame.static.evaluate import evaluate
    from sesame.static.vectors import load_vectors

    for what, path in (("--wordsim", args.wordsim), ("--analogies", args.analogies)):
        if not Path(path).exists():
            raise DataError(f"{what} {path} does not exist; point it at the evaluation data")
    vec = load_vectors(args.vectors)
    result = evaluate(vec, args.wordsim, args.analogies, args.restrict)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{len(vec)} words, dim {vec.dim}")
    print(f"{'similarity set':<22} {'rho':>7} {'pairs':>6} {'oov':>5}")
    for name, r in result["similarity"].items():
        print(f"{name:<22} {r['rho']:>7.3f} {r['pairs']:>6} {r['oov']:>5}")
    print(f"\n{'analogy section':<28} {'3CosAdd':>8} {'3CosMul':>8} {'answered':>9} {'questions':>9}")
    for name, r in result["analogy"].items():
        print(f"{name:<28} {r['acc_add']:>8.3f} {r['acc_mul']:>8.3f} {r['answered']:>9} {r['questions']:>9}")
    return 0


def run_similar(args) -> int:
    from sesame.static.vectors import load_vectors

    for word, sim in load_vectors(args.vectors).similar(args.word, args.topn):
        print(f"{word}\t{sim:.4f}")
    return 0


def run_analogy(args) -> int:
    from sesame.static.vectors import load_vectors

    for word, sim in load_vectors(args.vectors).analogy(args.a, args.b, args.c, args.topn):
        print(f"{word}\t{sim:.4f}")
    return 0


def run_transfer(args) -> int:
    from sesame.errors import ConfigError
    from sesame.models.io import load_model, save_model
    from sesame.models.model import build_model
    from sesame.static.transfer import init_embedding
    from sesame.static.vectors import load_vectors
    from sesame.tokenize import load_tokenizer

    tok_path = args.tokenizer or (args.model and Path(args.model) / "tokenizer.json")
    if not tok_path or not Path(tok_path).exists():
        raise ConfigError("no tokenizer: give --tokenizer (a fresh --config model has none of its own)")
    tok = load_tokenizer(tok_path)
    if args.model:
        model, _ = load_model(args.model)
    else:
        from sesame.config import load_config

        cfg = load_config(args.config, [*args.overrides, f"model.vocab_size={tok.vocab_size}"]).model
        model = build_model(cfg)
    report = init_embedding(model.body.embed.tokens.weight, load_vectors(args.vectors), tok,
                            rescale=not args.no_rescale)
    save_model(model, args.out, extra={"tokenizer.json": tok.to_json(),
                                       "static-transfer.json": json.dumps(report, indent=1)})
    print(json.dumps(report, indent=1))
    return 0
