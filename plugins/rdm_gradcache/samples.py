"""The sample grid a training run writes at its checkpoints: fixed seeded noise and conditions,
so grids of different steps show the same samples."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from rdm_core.distributed import DistContext
from rdm_core.images import save_grid
from rdm_core.interfaces import Conditions

SAMPLE_SEED_OFFSET = 7_919


def save_sample_grid(
    generator: Any,
    recipe: Any,
    path: Path,
    ctx: DistContext,
    *,
    batch: int,
    dtype: torch.dtype,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> None:
    """``train.sample_count`` samples in batches of ``batch``, saved by rank 0 as ``path`` (with the
    reference build's ``real_grid.png`` copied beside it once, for comparison)."""
    count = int(recipe.train.sample_count)
    if count <= 0:
        return
    seed = int(recipe.run.seed) + SAMPLE_SEED_OFFSET
    noise_rng, cond_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    shape = tuple(generator.noise_shape())
    outs = []
    # fork_rng: sampling must not move the training RNG (resume exactness).
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []), torch.no_grad():
        for start in range(0, count, batch):
            b = min(batch, count - start)
            noise = torch.randn((b, *shape), generator=noise_rng).to(ctx.device, dtype)
            cond = generator.sample_conditions(b, cond_rng)
            cond = cond.to(ctx.device) if isinstance(cond, Conditions) else cond
            with autocast():
                outs.append(generator.generate(noise, cond).float().cpu())
    if ctx.is_main:
        save_grid(torch.cat(outs), path)
        real = Path(recipe.references.dir) / "real_grid.png"  # written by `rdm reference build`
        if real.is_file() and not (path.parent / "real.png").exists():
            shutil.copyfile(real, path.parent / "real.png")
