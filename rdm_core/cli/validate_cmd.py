"""``rdm validate RECIPE [--set key=value ...] [--rehearse]``: names, keys, arguments and input
files, without loading weights. ``--rehearse`` checks the recipe as ``rdm run --rehearse`` runs it."""

from __future__ import annotations

import argparse

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", nargs="+", help="recipe file(s) or shipped recipe name(s)")
    add_overrides(parser)
    parser.add_argument(
        "--rehearse", action="store_true", help="check the rehearsal of the recipe (what `rdm run --rehearse` runs)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return run


def run(args: argparse.Namespace) -> int:
    import tempfile

    from rdm_core.cli.run_cmd import prepare
    from rdm_core.console import console, print_json, styled
    from rdm_core.recipe.load import find_recipe, load_recipe
    from rdm_core.recipe.validate import validate_recipe

    report = []
    for name in args.recipe:
        if args.rehearse:
            with tempfile.TemporaryDirectory(prefix="rdm_validate_") as tmp:
                recipe, _ = prepare(name, args.overrides, True, tmp)
                checks = validate_recipe(recipe)
        else:
            checks = validate_recipe(load_recipe(name, args.overrides))
        report.append({"recipe": str(find_recipe(name)), "ok": True, "checks": checks})
        if not args.json:
            console.print(styled(("ok", "green"), f" {find_recipe(name)}: " + "; ".join(checks)))
    if args.json:
        print_json(report)
    return 0
