"""``rdm train RECIPE [--set key=value]... [--resume]`` (also under ``torchrun ... -m rdm_core train``)."""

from __future__ import annotations

import argparse

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    add_overrides(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from the latest checkpoint of the run directory"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    return run


def run(args: argparse.Namespace) -> int:
    from rdm_core.console import console
    from rdm_core.distributed import current_context, destroy
    from rdm_core.recipe.assemble import build_trainer
    from rdm_core.recipe.load import load_recipe
    from rdm_core.recipe.validate import validate_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    validate_recipe(recipe, files=False)  # input data of other stages (eval prompts, ...) is not needed here
    trainer = build_trainer(recipe)
    # Factories receive only the recipe; give ours the user's spelling for rebuild hints.
    if hasattr(trainer, "recipe_ref"):
        trainer.recipe_ref = args.recipe
    if hasattr(trainer, "show_progress"):
        trainer.show_progress = not args.no_progress
    try:
        summary = trainer.run(resume=args.resume)
    finally:
        ctx = current_context()
        destroy()
    if ctx.is_main:
        last = summary.get("last") or {}
        raw = " ".join(f"{k}={v:.4g}" for k, v in (last.get("raw") or {}).items())
        console.print(f"[green]done[/] {summary['run_dir']} at step {summary['step']}" + (f": {raw}" if raw else ""))
    return 0
