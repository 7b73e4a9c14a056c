"""The ``eval`` stage of ``rdm run``: ``rdm eval`` of the run's latest checkpoint with every metric
of ``eval.metrics``; the metrics go into ``report.json``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rdm_core.run.stage import StageContext, StageResult


def _finite(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class EvalStage:
    """Evaluate ``<run_dir>`` (its latest checkpoint) into ``<run_dir>/eval``."""

    name = "eval"
    order = 50

    def applies(self, recipe: Any) -> bool:
        return len(recipe.eval.metrics) > 0

    def key(self, recipe: Any) -> Any:
        from rdm_core.recipe.assemble import plain

        data = plain(recipe)
        data.pop("description", None)
        return data

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        return [ctx.run_dir / "eval" / "eval.json"]

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        from rdm_core.console import console
        from rdm_eval.evaluate import evaluate
        from rdm_eval.report import ratio_table, scalar_table

        outcome = evaluate(recipe, checkpoint=str(ctx.run_dir), out_dir=ctx.run_dir / "eval")
        if any(m in outcome.results for m in ("sw_r14", "mmd_r14")):
            console.print(ratio_table(outcome.results, outcome.encoders, outcome.held_out))
        other = scalar_table(outcome.results)
        if other is not None:
            console.print(other)
        metrics: dict[str, Any] = {}
        for name, res in outcome.results.items():
            metrics[name] = _finite({"value": res.value, "per_item": dict(res.per_item)} if res.per_item else res.value)
        return StageResult(outputs=sorted(outcome.files.values()), metrics=metrics)
