"""``rdm train RECIPE [--set key=value]... [--resume]`` (also ``torchrun ... -m rdm_core train``).

The command belongs to the core and dispatches on ``train.trainer``: the trainer is whatever a
plugin registered under that name, built as ``factory(recipe, TrainerOptions(...))``. With the
trainer's plugin disabled the command stays, and says which plugin to enable.
"""

from __future__ import annotations

import argparse

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    add_overrides(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from the latest checkpoint of the run directory"
    )
    parser.add_argument(
        "--allow-recipe-change",
        action="store_true",
        help="--resume with a recipe that differs from the run's: keep the old one in recipe_history/ and record the step",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    return run


def run(args: argparse.Namespace) -> int:
    from rdm_core.console import console, styled
    from rdm_core.distributed import current_context, destroy
    from rdm_core.interfaces import TrainerOptions
    from rdm_core.recipe.assemble import build_trainer
    from rdm_core.recipe.load import load_recipe
    from rdm_core.recipe.validate import validate_recipe
    from rdm_core.run_dir import claimed_run

    recipe = load_recipe(args.recipe, args.overrides)
    # metric names only (training imports no evaluation code); input files of other stages
    # (eval prompts, ...) are not needed here
    validate_recipe(recipe, files=False, metric_args=False)
    trainer = build_trainer(recipe, TrainerOptions(recipe_ref=args.recipe, show_progress=not args.no_progress))
    try:
        # one writer per run directory (rank 0 holds the lock for the whole launch)
        with claimed_run(recipe, command="rdm train", resume=args.resume, allow_recipe_change=args.allow_recipe_change):
            summary = trainer.run(resume=args.resume)
    finally:
        ctx = current_context()
        destroy()
    if ctx.is_main:
        last = summary.get("last") or {}
        raw = " ".join(f"{k}={v:.4g}" for k, v in (last.get("raw") or {}).items())
        console.print(
            styled(("done", "green"), f" {summary['run_dir']} at step {summary['step']}" + (f": {raw}" if raw else ""))
        )
    return 0
