"""The rollout layout N = micro_batch x world_size x chunks, and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rdm_core.errors import RecipeError


@dataclass(frozen=True)
class Layout:
    """How the global batch N is split: ``rollout = micro_batch * world_size * chunks``."""

    rollout: int
    micro_batch: int
    world_size: int
    chunks: int

    @property
    def per_rank(self) -> int:
        return self.micro_batch * self.chunks


def resolve_layout(train: Any, world_size: int) -> Layout:
    """Check (or derive) ``train.chunks`` for this world size; a clear RecipeError otherwise."""
    n, b = int(train.rollout), int(train.micro_batch)
    if n <= 0 or b <= 0:
        raise RecipeError(
            f"train.rollout ({n}) and train.micro_batch ({b}) must be positive.",
            "set e.g. train.rollout=1024 train.micro_batch=8",
        )
    if train.chunks is None:
        if n % (b * world_size):
            raise RecipeError(
                f"train.rollout {n} is not divisible by micro_batch {b} x world_size {world_size}.",
                f"pick a rollout that is a multiple of {b * world_size}, or change micro_batch / the number of processes",
            )
        return Layout(n, b, world_size, n // (b * world_size))
    k = int(train.chunks)
    if k <= 0 or b * world_size * k != n:
        raise RecipeError(
            f"train.rollout {n} != micro_batch {b} x world_size {world_size} x chunks {k} = {b * world_size * k}.",
            f"set train.chunks=null to derive it, or make rollout = {b * world_size * k}",
        )
    return Layout(n, b, world_size, k)


def lr_at(train: Any, step_index: int) -> float:
    """Learning rate for the 0-based step ``step_index``: warmup, then constant or cosine.

    Defaults (no warmup, constant) reproduce the paper's recipes (schedules are opt-in).
    """
    base = float(train.lr)
    warmup = int(train.warmup_steps)
    if warmup > 0 and step_index < warmup:
        return base * (step_index + 1) / warmup
    if train.schedule == "cosine":
        span = max(1, int(train.steps) - warmup)
        progress = min(1.0, max(0.0, (step_index - warmup) / span))
        floor = float(train.min_lr_ratio)
        return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    if train.schedule != "constant":
        raise RecipeError(f"train.schedule {train.schedule!r} is unknown.", "use constant or cosine")
    return base
