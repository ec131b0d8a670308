"""Options shared by the compression verbs (distill, prune, quantize)."""
from __future__ import annotations

import json

from sesame.cli.common import add_overwrite_arg


def add_common(p, sections: tuple[str, ...]) -> None:
    p.add_argument("--out", help="run directory (default: runs/<verb>-<dataset>)")
    p.add_argument("--config", help=f"a TOML file with {', '.join('[' + s + ']' for s in sections)} sections")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help=f"override a setting of {', '.join(sections)}, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--max-train", type=int, help="train on at most N examples (a fixed-seed subset)")
    p.add_argument("--max-eval", type=int, help="evaluate on at most N examples per split")
    p.add_argument("--data-dir", help="where the labeled sets live (default: ../shared/data/labeled)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_overwrite_arg(p)


def settings(args, sections: tuple[str, ...]) -> dict[str, dict]:
    """{section: table} from --config, then --set."""
    from sesame.config.base import closest
    from sesame.config.run import load_dict, parse_override
    from sesame.errors import ConfigError

    data = load_dict(args.config) if args.config else {}
    for key in data:
        if key not in sections:
            raise ConfigError(f"unknown section [{key}]{closest(key, sections)} in {args.config}; this verb reads "
                              f"{', '.join(sections)}")
    out = {s: dict(data.get(s) or {}) for s in sections}
    for text in args.overrides:
        path, value = parse_override(text)
        if path[0] not in sections or len(path) != 2:
            raise ConfigError(f"--set {text!r}: this verb takes {', '.join(s + '.KEY' for s in sections)}"
                              f"{closest(path[0], sections)}")
        out[path[0]][path[1]] = value
    return out


def print_eval(name: str, results: dict) -> None:
    for split, r in results.items():
        print(f"{name} {split} ({r['examples']} examples): {json.dumps(r['metrics'])}")
