"""``train.max_seconds``: a CPU-time budget for the training steps of one run segment.

The clock is ``time.process_time()`` of the training process, so load from other jobs on a
shared machine does not shrink the budget; only the steps count (not set-up, checkpoints or
sample grids), and a resumed run starts its own budget from 0.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rdm_core.distributed import DistContext
from rdm_core.errors import RecipeError


class CpuBudget:
    """Counts the CPU seconds of training steps against ``train.max_seconds`` (``None``: no budget)."""

    def __init__(self, limit: float | None) -> None:
        if limit is not None and not limit > 0:
            raise RecipeError(
                f"train.max_seconds must be positive, got {limit}.",
                "set train.max_seconds to a positive number of CPU seconds, or null for no budget",
            )
        self.limit = limit
        self.used = 0.0
        self._started: float | None = None

    @classmethod
    def from_recipe(cls, train: Any) -> CpuBudget:
        limit = train.get("max_seconds")
        return cls(None if limit is None else float(limit))

    @property
    def enabled(self) -> bool:
        return self.limit is not None

    def start_step(self) -> None:
        self._started = time.process_time()

    def end_step(self, ctx: DistContext) -> bool:
        """Add this step's CPU time; True when the budget is spent (rank 0's verdict, on every rank)."""
        assert self._started is not None, "end_step() without start_step()"
        self.used += time.process_time() - self._started
        self._started = None
        return self.limit is not None and agree(self.used > self.limit, ctx)


def agree(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank (CPU clocks differ between processes)."""
    if not ctx.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())
