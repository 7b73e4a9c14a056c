"""Controller floors: the exact training loss of real held-out batches (docs/method.md).

A floor is only meaningful at the N it was computed for (the biased repulsion has a
``(1 - E k)/N`` offset), so the floors file stores N and loading checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.artifacts import read_json, write_json
from rdm_core.errors import ArtifactError, ShapeError


@torch.no_grad()
def compute_floor(reference: Any, val_features: Tensor, n: int, draws: int = 8, seed: int = 0) -> float:
    """Mean of ``reference.distance`` over ``draws`` random subsets of ``n`` real val rows.

    Args:
        reference: the training reference set (same Z, alpha, sigma, k_rr as training).
        val_features: ``(n_val, d)`` held-out real features.
        n: subset size = the training N.
        draws: number of subsets (8).
        seed: CPU generator seed (0).
    """
    if val_features.dim() != 2 or val_features.shape[0] < n or n < 1:
        raise ShapeError(
            f"floors need at least n={n} validation rows, got shape {tuple(val_features.shape)}.",
            "extract more validation features or lower the training N (train.rollout)",
        )
    gen = torch.Generator().manual_seed(int(seed))
    total = 0.0
    for _ in range(int(draws)):
        idx = torch.randperm(val_features.shape[0], generator=gen)[:n].to(val_features.device)
        total += float(reference.distance(val_features.index_select(0, idx)))
    return total / int(draws)


def save_floors(
    path: str | Path,
    floors: Mapping[str, float],
    n: int,
    *,
    draws: int = 8,
    seed: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{"n": N, "draws": .., "seed": .., "floors": {encoder: b_e}}`` atomically."""
    write_json(
        path,
        {
            "n": int(n),
            "draws": int(draws),
            "seed": int(seed),
            "floors": {k: float(v) for k, v in floors.items()},
            **dict(extra or {}),
        },
        checksum=True,
    )


def load_floors(path: str | Path, expect_n: int | None = None) -> dict[str, float]:
    """``{encoder: b_e}`` from a floors file, refusing floors computed at another N.

    Raises:
        ArtifactError: missing/corrupt file, or ``n`` differs from ``expect_n``.
    """
    data = read_json(path, fix="delete it and recompute the floors with `rdm reference build RECIPE --split val`")
    if not isinstance(data, dict) or not isinstance(data.get("floors"), dict) or "n" not in data:
        raise ArtifactError(
            f"{path} is not an rdm floors file (needs 'n' and 'floors').",
            "recompute floors with `rdm reference build RECIPE --split val`",
        )
    if expect_n is not None and data["n"] is None:
        raise ArtifactError(
            f"{path} does not record the N its floors were computed at.",
            "re-import the floors with `rdm reference import FILE --floors-n N` (N = their batch size)",
        )
    if expect_n is not None and int(data["n"]) != int(expect_n):
        raise ArtifactError(
            f"{path} holds floors computed at N={data['n']}, but training uses N={expect_n}.",
            "recompute the floors at the training N (`rdm reference build RECIPE --split val`)",
        )
    return {k: float(v) for k, v in data["floors"].items()}
