"""``rdm run``: every stage a recipe declares, in order, each skipped when its outputs are complete
and match the recipe, with a final table and ``report.json``; ``--rehearse`` runs the same stage
graph on tiny stand-ins of every model."""

from __future__ import annotations

from rdm_core.run.stage import Stage, StageContext, StageResult

__all__ = ["Stage", "StageContext", "StageResult"]
