"""``rdm eval RECIPE (--checkpoint C | --base | --images DIR | --features FILE | --real-val)``.

Prints a rich table per encoder (held-out marked ``*``), writes ``eval.json``, ``ratios.png``
and, for renders and image folders, ``features.safetensors`` (re-score later with --features).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Add the ``eval`` arguments; return the runner."""
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--checkpoint",
        metavar="C",
        help="student weights: a run dir (latest checkpoint), a checkpoint dir, model.safetensors, or a "
        "third-party container the generator reads (e.g. the authors' {'model': ...} .pth)",
    )
    src.add_argument("--base", action="store_true", help="evaluate the recipe's base generator weights (explicitly)")
    src.add_argument("--images", metavar="DIR", help="a folder of generated images (recursive, sorted)")
    src.add_argument("--features", metavar="FILE", help="cached generated features (features.safetensors)")
    src.add_argument("--real-val", action="store_true", help="score real val data (seeded half split; sanity ~1)")
    parser.add_argument(
        "--metrics",
        metavar="M1,M2",
        help="comma-separated: sw_r14,mmd_r14,pickscore,geneval,class_accuracy (default: the recipe's eval.metrics)",
    )
    add_overrides(parser, "recipe override, repeatable (e.g. eval.num_samples=4096)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default <run dir>/eval/<input>)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    return run


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rdm_core.console import console, print_json
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.evaluate import evaluate
    from rdm_eval.report import ratio_table, scalar_table

    recipe = load_recipe(args.recipe, args.overrides)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    outcome = evaluate(
        recipe,
        checkpoint=args.checkpoint,
        base=args.base,
        images=args.images,
        features=args.features,
        real_val=args.real_val,
        metrics=metrics,
        out_dir=args.out,
    )
    if args.json:
        print_json({"metrics": {k: asdict(v) for k, v in outcome.results.items()}, "files": outcome.files})
        return 0
    if any(m in outcome.results for m in ("sw_r14", "mmd_r14")):
        console.print(ratio_table(outcome.results, outcome.encoders, outcome.held_out))
    other = scalar_table(outcome.results)
    if other is not None:
        console.print(other)
    for what, path in outcome.files.items():
        console.print(f"{what}: {path}")
    return 0
