"""The trainer contract: how ``rdm train`` hands an assembled recipe to the registered trainer.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class TrainerOptions:
    """How ``rdm train`` was asked to run, passed to the trainer factory with the recipe.

    Attributes:
        recipe_ref: how the user named the recipe, quoted in "rebuild with ..." hints.
        show_progress: draw a progress bar (rank 0 only).
        step_callbacks: called as ``callback(step)`` once a step is complete (after its
            checkpoint and samples are written). Nothing in rdm installs one; tests use it, e.g.
            to SIGKILL a run between checkpoints.
    """

    recipe_ref: str = "RECIPE"
    show_progress: bool = True
    step_callbacks: tuple[Callable[[int], None], ...] = ()


@runtime_checkable
class Trainer(Protocol):
    """Runs an assembled recipe; owns the run directory, checkpoints and resume.

    Built by ``factory(recipe, options)`` with :class:`TrainerOptions`.
    """

    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train to the recipe's end; returns a JSON-ready summary (``run_dir``, ``step``, ...)."""
        ...
