"""Evidence for issue 10: is tokenizer training reproducible across fresh processes?
Trains each route twice, each time in a new Python process, on one shared corpus and records
the SHA-256 of the tokenizer.json, its size and the seconds taken. Run from the repository root:
    python docs/evidence/reliability/tokenizer_determinism.py
Writes docs/evidence/reliability/tokenizer_determinism.json."""
import json
import subprocess
import sys
from pathlib import Path

CORPUS = "../shared/data/corpora/en/tinyshakespeare"
VOCAB = 2000
CHILD = """
import hashlib, json, sys, time
kind, route = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if route == "sesame":
    from sesame.tokenize import train_tokenizer
    tok = train_tokenizer([sys.argv[3]], kind=kind, vocab_size=int(sys.argv[4]), special_tokens=None)
    text, size = tok.to_json(), tok.vocab_size
else:  # tokenizers' own WordPiece / Unigram trainer, as sesame used them before
    from tokenizers import Tokenizer, models, trainers
    from sesame.config import TokenizerConfig
    from sesame.tokenize.train import _unk, build_normalizer, build_pre_tokenizer, expand_files, iter_lines
    cfg = TokenizerConfig(kind=kind, vocab_size=int(sys.argv[4]))
    if kind == "wordpiece":
        b = Tokenizer(models.WordPiece(unk_token=_unk(cfg), continuing_subword_prefix="##"))
        trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                            special_tokens=cfg.specials, limit_alphabet=cfg.alphabet_limit,
                                            continuing_subword_prefix="##", show_progress=False)
    else:
        b = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=cfg.specials, unk_token=_unk(cfg),
                                          max_piece_length=cfg.max_piece_length, show_progress=False)
    b.normalizer, b.pre_tokenizer = build_normalizer(cfg), build_pre_tokenizer(cfg)
    b.train_from_iterator(iter_lines(expand_files([sys.argv[3]])), trainer)
    text, size = b.to_str(), b.get_vocab_size()
print(json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest()[:16], "vocab": size,
                  "seconds": round(time.perf_counter() - t0, 2)}))
"""


def main() -> None:
    rows = []
    for kind, route in (("wordpiece", "sesame"), ("wordpiece", "tokenizers"), ("bpe", "sesame"), ("unigram", "sesame"),
                        ("unigram", "tokenizers")):
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", CHILD, kind, route, CORPUS, str(VOCAB)], capture_output=True,
                                 text=True, check=True, env={"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
                                                             "PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append({"kind": kind, "trainer": route, "runs": runs,
                     "identical": runs[0]["sha256"] == runs[1]["sha256"]})
        print(rows[-1])
    Path(__file__).with_suffix(".json").write_text(json.dumps({"corpus": CORPUS, "vocab_size": VOCAB, "rows": rows},
                                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
