"""`sesame summary CONFIG`: build the model a config or preset describes and print its shape."""
from __future__ import annotations

from sesame.cli.common import add_config_args
from sesame.errors import SesameError


def add_parser(sub) -> None:
    p = sub.add_parser("summary", help="build a model from a config or preset and print its summary",
                       description="Build the model described by CONFIG (a TOML file or a preset name) "
                                   "and print its shape and parameter counts.")
    add_config_args(p, required=False)
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.set_defaults(run=run)


def run(args) -> int:
    from sesame.config import load_config, preset_names
    from sesame.models import build_model

    if args.list:
        print("\n".join(preset_names()))
        return 0
    if args.config is None:
        raise SesameError("name a config file or preset (see `sesame summary --list`)")
    config = load_config(args.config, args.overrides)
    print(build_model(config.model).summary())
    if config.generator is not None:
        print("generator:")
        print(build_model(config.generator).summary())
    return 0
