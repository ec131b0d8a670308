"""Argument helpers shared by verbs."""
from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """CONFIG (a TOML file or preset name) and repeatable ``--set section.key=value``."""
    parser.add_argument("config", nargs=None if required else "?", help="a TOML config file or a preset name")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override any config field, e.g. --set model.layers=4 (repeatable)",
    )


def add_overwrite_arg(parser) -> None:
    """``--overwrite``: the one way to write into an existing non-empty output."""
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing non-empty output (files sesame did not write are kept)")
