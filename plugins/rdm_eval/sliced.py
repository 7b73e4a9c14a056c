"""SW_r14: the sliced Wasserstein-2 ratio of generated vs real-val features (docs/method.md).

For every encoder e::

    r_e = SW_2(gen_e, train_e) / SW_2(val_e, train_e)

with the SAME unit directions for numerator and denominator (drawn in chunks of 64 from a
``torch.Generator`` seeded 0), all three sets truncated to a common N, and
``SW_r14 = mean_e r_e`` (arithmetic, NaN ratios dropped). Real val therefore scores ~1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rdm_core.errors import NonFiniteError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor

NUM_PROJECTIONS = 1024
PROJECTION_CHUNK = 64
PROJECTION_SEED = 0


def projection_chunks(
    dim: int,
    *,
    num_projections: int = NUM_PROJECTIONS,
    chunk: int = PROJECTION_CHUNK,
    seed: int = PROJECTION_SEED,
    device: Any = "cpu",
    dtype: torch.dtype | None = None,
) -> Iterator[Tensor]:
    """The protocol's unit directions ``(dim, c)`` in chunks, from one generator seeded ``seed`` on ``device``.

    The seed is shared across encoders, checkpoints and the real-val floor so that ratios are
    comparable. The draw itself is :func:`rdm_core.numerics.unit_directions` (N(0, I) in
    float32, normalised, then cast to ``dtype``).
    """
    import torch

    from rdm_core.numerics import unit_directions

    gen = torch.Generator(device=device).manual_seed(seed)
    return unit_directions(dim, num_projections, gen, chunk=chunk, dtype=dtype)


def _check_pair(name: str, *sets: Tensor) -> None:
    import torch

    dims = {int(s.shape[1]) if s.dim() == 2 else -1 for s in sets}
    if len(dims) != 1 or -1 in dims:
        shapes = ", ".join(str(tuple(s.shape)) for s in sets)
        raise ShapeError(
            f"{name}: feature sets must be 2-D with one common dimension, got shapes {shapes}.",
            "extract every set with the same encoder (and variant) and pass (N, dim) tensors",
        )
    for s in sets:
        if s.shape[0] < 2:
            raise ShapeError(
                f"{name}: a feature set has {s.shape[0]} rows; SW needs at least 2.", "render or load more samples"
            )
        if not bool(torch.isfinite(s).all()):
            raise NonFiniteError(
                f"{name}: features contain NaN or Inf.",
                "check the encoder precision policy (fp32 for Inception) and the inputs",
            )


def sliced_wasserstein_many(
    sets: Mapping[str, Tensor],
    anchor: Tensor,
    *,
    p: int = 2,
    num_projections: int = NUM_PROJECTIONS,
    chunk: int = PROJECTION_CHUNK,
    seed: int = PROJECTION_SEED,
    n: int | None = None,
    dtype: torch.dtype | None = None,
    name: str = "features",
) -> tuple[dict[str, float], int]:
    """``SW_p(X, anchor)`` for every ``X`` in ``sets``, on the same directions.

    All sets and the anchor are truncated to a common ``N`` (the smallest size, or ``n`` if
    smaller). The anchor's projections are sorted once per chunk and shared.

    Args:
        sets: name -> ``(N_x, d)`` features (e.g. ``{"gen": ..., "val": ...}``).
        anchor: ``(N_r, d)`` reference features (the train bank).
        p: order of the Wasserstein distance.
        num_projections: number of unit directions ``L``.
        chunk: directions per chunk (drawn sequentially from the one seeded generator).
        seed: direction seed (0 in the protocol).
        n: optional cap on the common N.
        dtype: computation dtype (default: float32; float64 for checks).
        name: label used in error messages.

    Returns:
        (name -> SW value, the common N used).
    """
    import torch

    from rdm_core.numerics import sliced_wasserstein_power

    _check_pair(name, anchor, *sets.values())
    common = min([int(anchor.shape[0]), *(int(s.shape[0]) for s in sets.values())])
    if n is not None:
        common = min(common, int(n))
    work = dtype or torch.float32
    device = anchor.device
    y = anchor[:common].to(device=device, dtype=work)
    xs = {k: v[:common].to(device=device, dtype=work) for k, v in sets.items()}
    directions = projection_chunks(
        int(y.shape[1]), num_projections=num_projections, chunk=chunk, seed=seed, device=device, dtype=work
    )
    powers = sliced_wasserstein_power(xs, y, directions, p)
    return {k: float(v) ** (1.0 / p) for k, v in powers.items()}, common


def sliced_wasserstein(x: Tensor, y: Tensor, **kwargs: Any) -> float:
    """``SW_p(x, y)`` on the protocol's seeded directions (see :func:`sliced_wasserstein_many`)."""
    values, _ = sliced_wasserstein_many({"x": x}, y, **kwargs)
    return values["x"]


def mean_ratio(ratios: Mapping[str, float]) -> float:
    """Arithmetic mean of finite ratios (NaN/Inf dropped); NaN when none is finite."""
    finite = [v for v in ratios.values() if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def safe_ratio(num: float, den: float) -> float:
    """``num / den``, NaN when the denominator is zero or either side is not finite."""
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
        return float("nan")
    return num / den
