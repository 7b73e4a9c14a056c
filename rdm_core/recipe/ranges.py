"""The ranges numeric recipe values must lie in, checked by ``rdm validate`` and every command.

The schema gives each value a type; this module adds the bounds that make it meaningful, so
``train.micro_batch: 0`` or ``train.lr: -1`` is refused in one line before anything is built or
written, instead of a ``ZeroDivisionError`` in the layout or a run that climbs the loss.
Keys a recipe does not have (a section another version moved) are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rdm_core.errors import RecipeError


@dataclass(frozen=True)
class Bound:
    """``low <= value`` (``low < value`` when ``strict``), optionally ``value <= high``."""

    key: str
    low: float
    strict: bool = False
    high: float | None = None
    example: str = "1"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range (``None`` when it is in range or unset)."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # null where allowed; types are the schema's job
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if (value <= self.low) if self.strict else (value < self.low):
            return f"must be {'greater than' if self.strict else 'at least'} {self.low:g}, got {value:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}, got {value:g}"
        return None


BOUNDS = (
    Bound("train.steps", 1, example="100"),
    Bound("train.rollout", 1, example="1024"),
    Bound("train.micro_batch", 1, example="8"),
    Bound("train.chunks", 1, example="null (derived from the rollout)"),
    Bound("train.lr", 0, strict=True, high=1, example="1e-4"),  # above 1, AdamW steps overflow fp32
    Bound("train.weight_decay", 0, example="0.0"),
    Bound("train.eps", 0, strict=True, example="1e-8"),
    Bound("train.grad_clip", 0, example="2.0 (0 disables clipping)"),
    Bound("train.warmup_steps", 0, example="0"),
    Bound("train.min_lr_ratio", 0, high=1, example="0.0"),
    Bound("train.checkpoint_every", 1, example="100"),
    Bound("train.keep_checkpoints", 0, example="3 (0 keeps every checkpoint)"),
    Bound("train.sample_every", 0, example="0 (only at checkpoints)"),
    Bound("train.sample_count", 0, example="64"),
    Bound("train.log_every", 1, example="1"),
    Bound("train.max_seconds", 0, strict=True, example="null (no budget)"),
    Bound("train.max_nonfinite_steps", 1, example="10"),
    Bound("encoders.batch_size", 1, example="64"),
    Bound("references.batch_size", 1, example="64"),
    Bound("references.shard_size", 1, example="4096"),
    Bound("references.eval_bank_size", 1, example="16384"),
    Bound("eval.num_samples", 1, example="16384"),
    Bound("eval.batch_size", 1, example="64"),
)


def check_ranges(recipe: Any) -> None:
    """Refuse the first numeric value outside its range.

    Raises:
        RecipeError: naming the key, the value, the range and a valid example.
    """
    from omegaconf import OmegaConf

    for bound in BOUNDS:
        value = OmegaConf.select(recipe, bound.key, default=None)
        problem = bound.problem(value)
        if problem:
            raise RecipeError(f"{bound.key} {problem}.", f"set {bound.key} to e.g. {bound.example}")
    betas = OmegaConf.select(recipe, "train.betas", default=None)
    for i, beta in enumerate(betas or []):
        if isinstance(beta, (int, float)) and not 0 <= beta < 1:
            raise RecipeError(f"train.betas[{i}] must lie in [0, 1), got {beta:g}.", "use e.g. train.betas=[0.9,0.95]")
