"""The stages every recipe has: ``train`` (the recipe's trainer) and ``generate`` (samples of the
trained generator). Plugins add the others (context pools, reference build, evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError
from rdm_core.recipe.assemble import plain
from rdm_core.run.stage import StageContext, StageResult


def recipe_without(recipe: Any, *sections: str) -> dict[str, Any]:
    """The recipe as plain data without ``sections`` (and its description): a stage key."""
    data = plain(recipe)
    for name in ("description", "extends", *sections):
        data.pop(name, None)
    return data


class TrainStage:
    """Train with the recipe's trainer; an interrupted run resumes from its latest checkpoint.

    A run directory holding checkpoints of another recipe is refused (never silently continued
    or overwritten).
    """

    name = "train"
    order = 30

    def applies(self, recipe: Any) -> bool:
        return True

    def key(self, recipe: Any) -> Any:
        return recipe_without(recipe, "eval")

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        return [ctx.run_dir / "checkpoints"]

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        from rdm_core.checkpoints import latest_checkpoint, list_checkpoints
        from rdm_core.interfaces import TrainerOptions
        from rdm_core.recipe.assemble import build_trainer
        from rdm_core.recipe.load import recipe_path
        from rdm_core.resume import check_resume_recipe

        done = list_checkpoints(ctx.run_dir)
        resume = bool(done)
        if resume:  # the runner holds the run's lock; a changed recipe is refused with its keys
            check_resume_recipe(
                ctx.run_dir,
                recipe,
                done[-1][0],
                allow_change=False,
                fix="give this run another run.name (or --workdir), or delete that run directory",
            )
        path = recipe_path(recipe)  # a rehearsal's recipe is built in memory: no file to name
        trainer = build_trainer(recipe, TrainerOptions(recipe_ref=str(path) if path else "RECIPE"))
        trainer.run(resume=resume)
        latest = latest_checkpoint(ctx.run_dir)
        return StageResult(outputs=[str(latest)] if latest else [])


class GenerateStage:
    """Samples of the trained generator, seed 0: a grid of ``train.sample_count`` samples whose
    conditions the generator draws (``generated/``), and one sample per ``train.sample_prompts``
    entry (``generated/prompts/``); each set records its seeds and prompts in ``samples.json``."""

    name = "generate"
    order = 40

    def applies(self, recipe: Any) -> bool:
        return True

    def key(self, recipe: Any) -> Any:
        return recipe_without(recipe, "eval")

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        return [ctx.run_dir / "generated"]

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        from rdm_core.checkpoints import latest_checkpoint
        from rdm_core.cli.generate_cmd import load_sampling_generator, write_samples

        checkpoint = latest_checkpoint(ctx.run_dir)
        if checkpoint is None:
            raise RecipeError(f"{ctx.run_dir} has no checkpoint to sample from.", "run the train stage first")
        common = {
            "checkpoint": str(checkpoint),
            "seed": 0,
            "batch_size": max(1, int(recipe.eval.batch_size)),
            "recipe_ref": str(recipe.run.name),
            "generator": load_sampling_generator(recipe, checkpoint=str(checkpoint)),
        }
        out = ctx.run_dir / "generated"
        write_samples(recipe, out, num=max(1, int(recipe.train.sample_count)), **common)
        outputs = [str(out / "grid.png"), str(out / "samples.json")]
        prompts = [str(p) for p in recipe.train.sample_prompts]
        if prompts:
            write_samples(recipe, out / "prompts", prompts=prompts, **common)
            outputs += [str(out / "prompts" / "grid.png"), str(out / "prompts" / "samples.json")]
        return StageResult(outputs=outputs)


CORE_STAGES = (TrainStage, GenerateStage)
