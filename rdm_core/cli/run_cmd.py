"""``rdm run RECIPE [--set k=v ...] [--stages a,b] [--rehearse] [--workdir DIR]``.

Validates the recipe, then runs every stage it declares in order (context pool, references,
train, generate, eval), skipping the ones whose outputs are complete and match the recipe,
prints a table (stage, status, seconds, outputs) and writes ``<run dir>/report.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    add_overrides(parser)
    parser.add_argument("--stages", metavar="A,B", help="run only these stages (others count as done)")
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="the same stages on tiny stand-ins of every model, scaled-down counts (CPU, no weights, minutes)",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="put the run's outputs under DIR (rehearsals: default rehearse/<recipe>)",
    )
    return run


def prepare(recipe_ref: str, overrides: list[str], rehearse: bool, workdir: str | None) -> tuple[Any, Any]:
    """The recipe as it will run (relocated and/or rehearsed) and the rehearsal record (or ``None``)."""
    from rdm_core.recipe.load import find_recipe, load_recipe
    from rdm_core.recipe.validate import validate_recipe
    from rdm_core.run.rehearse import rehearsal_recipe, relocate_outputs

    recipe = load_recipe(recipe_ref, overrides)
    if rehearse:
        # the full recipe's names and arguments first: a rehearsal swaps models, never hides a
        # missing argument (its input files are checked after, as the rehearsal reads them)
        validate_recipe(recipe, files=False)
        root = Path(workdir) if workdir else Path("rehearse") / find_recipe(recipe_ref).stem
        return rehearsal_recipe(recipe, root)
    if workdir:
        recipe = relocate_outputs(recipe, Path(workdir))
    return recipe, None


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from rdm_core.console import console, styled
    from rdm_core.recipe.validate import validate_recipe
    from rdm_core.run.runner import run_stages

    recipe, rehearsal = prepare(args.recipe, args.overrides, args.rehearse, args.workdir)
    validate_recipe(recipe)
    if rehearsal is not None:
        console.print(
            styled(("rehearsal", "bold"), f" of {args.recipe} in {rehearsal.root} (tiny models, scaled counts, CPU)")
        )
        for path, note in rehearsal.stand_ins.items():
            console.print(styled(("stand-in", "yellow"), f" {path}: {note}"))
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None

    def on_stage(name: str, event: Any) -> None:
        if event == "start":
            console.rule(styled((name, "bold")))
        elif event.status == "skipped":
            console.print(f"{name}: skipped (outputs complete and match the recipe)", style="dim")

    extra = {"stand_ins": dict(rehearsal.stand_ins)} if rehearsal is not None else {}
    rows, metrics, report = run_stages(
        recipe, str(args.recipe), stages=wanted, rehearse=rehearsal is not None, on_stage=on_stage, extra=extra
    )
    table = Table(title=f"rdm run {args.recipe}" + (" (rehearsal)" if rehearsal is not None else ""))
    for col in ("stage", "status", "seconds", "outputs"):
        table.add_column(col)
    for row in rows:
        colour = {"ok": "green", "skipped": "dim", "failed": "red"}[row.status]
        table.add_row(row.name, styled((row.status, colour)), f"{row.seconds:.1f}", "\n".join(row.outputs))
    console.print(table)
    for name, value in metrics.items():
        shown = value.get("value") if isinstance(value, dict) else value
        console.print(f"{name}: {shown}")
    console.print(f"report: {report}")
    return 0
