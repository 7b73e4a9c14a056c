"""Stopping a diverged run instead of spending its budget on skipped steps.

A step whose loss or gradient is not finite is skipped (the weights do not move). One such step
can be noise; ``train.max_nonfinite_steps`` of them in a row mean the run has diverged: the
trainer stops with a non-zero exit and names the last checkpoint whose weights are finite.
Checkpoints written during a streak are marked non-finite, so rotation keeps the last finite
one and ``rdm generate`` / ``rdm eval`` refuse the others.
"""

from __future__ import annotations

from pathlib import Path

from rdm_core.errors import NonFiniteError


class DivergenceGuard:
    """Counts consecutive non-finite steps.

    Args:
        limit: ``train.max_nonfinite_steps``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.streak = 0
        self.first = 0

    def record(self, step: int, finite: bool) -> None:
        """Note whether ``step`` had a finite loss and gradient."""
        if finite:
            self.streak = 0
            return
        if self.streak == 0:
            self.first = step
        self.streak += 1

    @property
    def diverging(self) -> bool:
        """The latest step was non-finite (weights saved now are not to be trusted)."""
        return self.streak > 0

    @property
    def exhausted(self) -> bool:
        """``limit`` consecutive non-finite steps: stop."""
        return self.streak >= self.limit

    def error(self, step: int, run_dir: Path, recipe_ref: str) -> NonFiniteError:
        """The one-line stop, naming the last checkpoint with finite weights."""
        from rdm_core.checkpoints import is_finite_checkpoint, list_checkpoints

        finite = [p for _, p in list_checkpoints(run_dir) if is_finite_checkpoint(p)]
        back = (
            f"start a new run from its last finite checkpoint ({finite[-1]}) with "
            f"`rdm train {recipe_ref} --set generator.weights={finite[-1]} --set run.name=NEW`"
            if finite
            else f"train again (`rdm train {recipe_ref}` in a new run.name): no checkpoint has finite weights"
        )
        return NonFiniteError(
            f"training diverged: steps {self.first}-{step} had a non-finite loss or gradient "
            f"({self.streak} consecutive steps, train.max_nonfinite_steps {self.limit}); stopped at step {step}.",
            f"lower train.lr (or raise train.warmup_steps) and {back}",
        )
