"""Probe for the PLM comparison (recipes/compare/plm-en.toml): its random-init baseline has
the first arm's architecture (the learned position table), so this fine-tunes a random-init
model of the rotary MLM arm's architecture with the study's fine-tune settings and seeds,
to tell how much of the pre-trained arms' CoNLL lead is the position scheme.

    python recipes/plm_random_rotary_probe.py     # after the study has run

Cells go to runs/compare-plm-en/probes/<dataset>/random-rotary/seed<s>/ (a finished cell is
reused); the scores to docs/evidence/plm-en/probes/random-rotary.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "runs" / "compare-plm-en"


def main() -> None:
    import evidence
    from sesame.compare import load_study, pretrain_dir
    from sesame.finetune import finetune

    setting = evidence.context()
    study = load_study(ROOT / "recipes" / "compare" / "plm-en.toml")
    rows = {}
    for spec in study.finetune:
        for seed in study.seeds:
            run_dir = OUT / "probes" / spec.name / "random-rotary" / f"seed{seed}"
            if not (run_dir / "summary.json").is_file():
                model = pretrain_dir(OUT, "mlm-rotary", seed) / "model"
                finetune(str(model), spec.dataset, run_dir, {**spec.train, "seed": seed}, spec.options,
                         {"transfer_layers": "none"}, max_train=spec.max_train, progress=False,
                         resume=run_dir.is_dir(), say=lambda _: None)
            s = json.loads((run_dir / "summary.json").read_text())
            rows.setdefault(spec.name, {})[f"seed{seed}"] = {k: v["metrics"] for k, v in s["eval"].items()}
    evidence.save(ROOT / "docs" / "evidence" / "plm-en" / "probes" / "random-rotary.json", setting,
                  {"architecture": "the mlm-rotary arm's, random weights (transfer_layers = none)", "rows": rows})


if __name__ == "__main__":
    main()
