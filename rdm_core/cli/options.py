"""Command-line options several commands share, defined once so they read and behave the same."""

from __future__ import annotations

import argparse

OVERRIDE_HELP = "override a recipe value (repeatable), e.g. --set train.steps=10"


def add_overrides(parser: argparse.ArgumentParser, help: str = OVERRIDE_HELP) -> None:
    """``--set KEY=VALUE`` (repeatable) -> ``args.overrides``, a list of dotted-key overrides.

    The list is what :func:`rdm_core.recipe.load.load_recipe` takes as ``overrides``.
    """
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)
