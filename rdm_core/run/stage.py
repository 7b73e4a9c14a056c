"""The stage contract of ``rdm run`` and what a stage returns.

A stage is one resumable step of a recipe's run (context pool, reference build, training,
samples, evaluation). The runner decides whether to skip it from two things the stage states:
:meth:`Stage.key`, everything in the recipe its outputs depend on, and :meth:`Stage.outputs`,
the files and directories it writes. Core stages live in :mod:`rdm_core.run.core_stages`;
plugins add theirs through ``rdm_register_stages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class StageContext:
    """What a stage gets besides the recipe.

    Attributes:
        run_dir: ``<run.output_dir>/<run.name>``; stage records and ``report.json`` live here.
        rehearse: the recipe is a rehearsal (tiny models, scaled counts).
        results: results of the stages that ran (or were skipped) before, by name.
    """

    run_dir: Path
    rehearse: bool = False
    results: dict[str, StageResult] = field(default_factory=dict)


@dataclass
class StageResult:
    """What a finished stage produced: files/directories and metrics (JSON-able)."""

    outputs: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """One step of ``rdm run``.

    Attributes:
        name: the stage's name in ``--stages``, the table and ``report.json``.
        order: its place in the run (context 10, references 20, train 30, generate 40, eval 50).
    """

    name: str
    order: int

    def applies(self, recipe: Any) -> bool:
        """Whether the recipe declares this stage (e.g. a context pool only for pooled generators)."""
        ...

    def key(self, recipe: Any) -> Any:
        """JSON-able: everything in the recipe the outputs depend on (a change re-runs the stage)."""
        ...

    def outputs(self, recipe: Any, ctx: StageContext) -> list[Path]:
        """Files and directories the stage writes (all must exist for a skip)."""
        ...

    def run(self, recipe: Any, ctx: StageContext) -> StageResult:
        """Produce the outputs, resuming whatever an interrupted earlier run left."""
        ...
