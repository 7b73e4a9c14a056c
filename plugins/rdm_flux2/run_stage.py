"""The ``context`` stage of ``rdm run``: the generator's text-context pool, when the recipe names one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.run.stage import StageContext, StageResult


def _file_token(path: str) -> str:
    """Content identity of an input file (size, mtime): a changed prompt file re-runs the stage."""
    from rdm_core.prompts import resolve_path

    p = resolve_path(path)
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class ContextStage:
    """Encode ``generator.args.prompts`` into ``generator.args.context_pool`` (resumable, float16)."""

    name = "context"
    order = 10

    def applies(self, recipe: Any) -> bool:
        args = recipe.generator.args
        return recipe.generator.name == "flux2-klein" and bool(args.get("context_pool"))

    def key(self, recipe: Any) -> Any:
        from rdm_core.recipe.assemble import plain

        args = plain(recipe.generator.args)
        return {"generator": recipe.generator.name, "args": args, "prompts": _file_token(str(args["prompts"]))}

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        from rdm_flux2.context_pool import pool_files

        files = pool_files(str(recipe.generator.args.context_pool))
        return [files["array"], files["meta"]]

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        from rdm_core.devices import resolve_device
        from rdm_core.errors import RecipeError
        from rdm_flux2.cli import build_recipe_pool

        args = recipe.generator.args
        if not args.get("prompts"):
            raise RecipeError(
                "generator.args.context_pool is set but generator.args.prompts is not.",
                "set generator.args.prompts to the pool's prompts file (row i = pool row i)",
            )
        batch = max(1, int(recipe.eval.batch_size))
        path, _, _ = build_recipe_pool(
            recipe, str(args.prompts), str(args.context_pool), batch, resolve_device(recipe.run.device)
        )
        return StageResult(outputs=[str(path)])
