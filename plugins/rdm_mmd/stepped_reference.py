"""References that draw fresh real rows (or projections) every step, identically on every rank."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rdm_mmd.reference_base import ReferenceBase


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for per-step draws: identical on every rank for the same (seed, step)."""
    # Mix (seed, step) so consecutive steps of nearby seeds do not share streams.
    return torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + int(step) * 0x85EBCA77 + 1) % (2**63 - 1))


class SteppedReference(ReferenceBase):
    """A reference that draws fresh real rows (or projections) per call, seeded by a step counter.

    Every rank must draw the same rows: the trainer either calls ``set_step(step)`` before each
    distance, or relies on the internal counter, which advances once per ``distance`` call and is
    identical across ranks as long as every rank calls ``distance`` the same number of times.
    """

    def __init__(self, tensors: Mapping[str, Tensor], header: Mapping[str, Any], **options: Any) -> None:
        self.step = 0
        super().__init__(tensors, header, **options)

    def set_step(self, step: int) -> None:
        """Draw the next sample for optimizer step ``step`` (resume-safe)."""
        self.step = int(step)

    def _next_generator(self) -> torch.Generator:
        gen = step_generator(int(self.header.get("seed", 0)), self.step)
        self.step += 1
        return gen

    def real_sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` pool rows drawn with ``gen``: without replacement when the pool is large enough."""
        pool = self.tensors["pool"]
        size = pool.shape[0]
        idx = torch.randperm(size, generator=gen)[:n] if n <= size else torch.randint(size, (n,), generator=gen)
        return pool.index_select(0, idx.to(pool.device))
