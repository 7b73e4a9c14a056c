"""The ``references`` stage of ``rdm run``: ``rdm reference build`` for the whole battery and both splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.run.stage import StageContext, StageResult


class ReferencesStage:
    """Sources (with curation), features, training references, evaluation banks, floors, tau tables.

    The build resumes shard by shard and skips every step whose inputs did not change.
    """

    name = "references"
    order = 20

    def applies(self, recipe: Any) -> bool:
        from omegaconf import OmegaConf

        return not OmegaConf.is_missing(recipe.references.train, "name")

    def key(self, recipe: Any) -> Any:
        from rdm_core.recipe.assemble import plain

        data = plain(recipe)
        # what a reference build reads: the training N (floors), the render autocast, not the
        # optimiser; of the objective's balance only the floor draws (not the controller's gains)
        data["train"] = {"rollout": data["train"]["rollout"], "precision": data["train"]["precision"]}
        for section in ("description", "extends", "eval", "run"):
            data.pop(section, None)
        balance = (data.get("objective") or {}).get("balance")
        if isinstance(balance, dict):
            data["objective"]["balance"] = {"floor_draws": balance.get("floor_draws")}
        data["device"] = recipe.run.device
        return data

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        from rdm_mmd.config import mmd_settings

        out = [Path(recipe.references.dir)]
        joint = mmd_settings(recipe, "the references stage").joint
        table = Path(str(joint.text_table)) if joint.enabled and joint.text_table else None
        if table is not None and not table.is_relative_to(out[0]):
            out.append(table)
        return out

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        from rdm_references.pipeline import build_references
        from rdm_references.report import print_report

        report = build_references(recipe)
        print_report(report)
        root = Path(recipe.references.dir)
        shown = [root / "manifest.json", *self.outputs(recipe, ctx)[1:]]
        return StageResult(outputs=[str(p) for p in shown])
