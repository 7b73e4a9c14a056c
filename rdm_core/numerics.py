"""Feature-space numerics shared by training, reference building and evaluation.

One home for the pieces several plugins need: pairwise squared distances, the median bandwidth
heuristic, seeded unit directions and the sliced Wasserstein distance, and seeded k-means.
Evaluation (``rdm_eval``) must never import training code, so these live in the runtime rather
than in ``rdm_mmd``; both sides call the very same functions, which is what makes a bandwidth or
an SW value mean the same thing in ``rdm reference build``, ``rdm train`` and ``rdm eval``.
The formulas are in ``docs/method.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import NonFiniteError, RecipeError, ShapeError

BANDWIDTH_FLOOR = 1e-5  # the median heuristic never returns a smaller sigma (degenerate pools)


def sq_dists(x: Tensor, y: Tensor, x_sq: Tensor | None = None, y_sq: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances ``||x_i||^2 + ||y_j||^2 - 2 x_i.y_j``, clamped at 0.

    The expansion turns the work into one GEMM; the clamp removes the small negatives that
    round-off produces for near-identical rows.

    Args:
        x: ``(n, d)`` rows.
        y: ``(m, d)`` rows.
        x_sq: optional precomputed ``||x_i||^2`` (``(n,)``), e.g. when ``x`` is reused blockwise.
        y_sq: optional precomputed ``||y_j||^2`` (``(m,)``).

    Returns:
        The ``(n, m)`` matrix, in the dtype of the inputs.
    """
    if x.shape[-1] != y.shape[-1]:
        raise ShapeError(
            f"feature dimensions differ: {x.shape[-1]} vs {y.shape[-1]}.",
            "compare features of the same encoder (same dim)",
        )
    if x_sq is None:
        x_sq = x.pow(2).sum(-1)
    if y_sq is None:
        y_sq = y.pow(2).sum(-1)
    # One (n, m) buffer: the broadcast sum, then the GEMM accumulates into it (beta = 1).
    d2 = x_sq[:, None] + y_sq[None, :]
    d2.addmm_(x, y.T, beta=1.0, alpha=-2.0)
    return d2.clamp_min_(0.0)


def seeded_rows(x: Tensor, count: int, seed: int) -> Tensor:
    """``count`` rows of ``x`` (all rows, permuted, when ``count >= n``) chosen by a CPU generator seeded ``seed``.

    The draw happens on the CPU so the same seed picks the same rows on every device.
    """
    gen = torch.Generator().manual_seed(int(seed))
    take = torch.randperm(x.shape[0], generator=gen)[: min(int(count), x.shape[0])]
    return x.index_select(0, take.to(x.device))


def median_sq_distance(features: Tensor, subsample: int = 10000, seed: int = 0) -> float:
    """Median of ``||x_i - x_j||^2`` over the pairs ``i < j`` of a seeded random subsample, in float64.

    The median is the usual one: the middle value for an odd number of pairs, the mean of the
    two middle values for an even number (not ``torch.median``'s lower middle value).

    Args:
        features: ``(n >= 2, d)`` feature rows.
        subsample: at most this many rows, drawn by a CPU generator seeded ``seed``.
        seed: subsample seed.

    Raises:
        ShapeError: fewer than two rows, or not a matrix.
        NonFiniteError: NaN or Inf in the subsample.
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ShapeError(
            f"the median bandwidth needs an (n >= 2, d) feature matrix, got shape {tuple(features.shape)}.",
            "pass at least two feature rows",
        )
    x = seeded_rows(features, subsample, seed).double()
    if not torch.isfinite(x).all():
        raise NonFiniteError(
            "features contain NaN or Inf; the median bandwidth is undefined.",
            "check the encoder outputs (precision policy, input range)",
        )
    n = x.shape[0]
    # A boolean mask of the strict upper triangle costs n^2 bytes, an index list 16 n^2 / 2.
    pairs = sq_dists(x, x)[torch.ones(n, n, dtype=torch.bool, device=x.device).triu_(1)]
    count = pairs.numel()
    upper = pairs.kthvalue(count // 2 + 1).values
    med = upper if count % 2 else 0.5 * (pairs.kthvalue(count // 2).values + upper)
    return float(med)


def median_bandwidth(features: Tensor, scale: float = 1.0, subsample: int = 10000, seed: int = 0) -> float:
    """The median heuristic ``sigma = scale * max(sqrt(median_{i<j} ||x_i - x_j||^2), 1e-5)``.

    Every bandwidth rdm derives from data goes through this function: training references, the
    joint text scale, the evaluation RFF bank and the CPU demo's prototype.

    Args:
        features: ``(n, d)`` feature pool.
        scale: multiplier (1.0 for plain references, 0.25 for the "cold" joint references).
        subsample: at most this many rows, drawn with a generator seeded ``seed`` (reproducible).
        seed: subsample seed.

    Returns:
        The bandwidth as a Python float.
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise RecipeError(
            f"bandwidth scale must be a positive number, got {scale!r}.", "set objective.distance.bandwidth_scale > 0"
        )
    med = median_sq_distance(features, subsample=subsample, seed=seed)
    return float(scale) * max(math.sqrt(max(med, 0.0)), BANDWIDTH_FLOOR)


def unit_directions(
    dim: int,
    count: int,
    generator: torch.Generator,
    *,
    chunk: int = 64,
    dtype: torch.dtype | None = None,
    device: Any = None,
) -> Iterator[Tensor]:
    """``count`` unit directions in ``R^dim``, yielded as ``(dim, c)`` chunks of at most ``chunk`` columns.

    Each chunk is drawn as ``N(0, I)`` in float32 from ``generator`` (on the generator's device),
    normalised to unit length per column, then cast to ``dtype`` and moved to ``device``. Drawing
    chunk by chunk from one generator keeps the values independent of how many chunks a caller
    consumes at a time, and bounds memory for large ``dim``.
    """
    if dim <= 0 or count <= 0 or chunk <= 0:
        raise ValueError(f"dim, count and chunk must be positive (got {dim}, {count}, {chunk})")
    done = 0
    while done < count:
        c = min(chunk, count - done)
        theta = torch.randn(dim, c, generator=generator, device=generator.device, dtype=torch.float32)
        theta = theta / theta.norm(dim=0, keepdim=True)
        yield theta.to(device=device if device is not None else theta.device, dtype=dtype or theta.dtype)
        done += c


def sliced_wasserstein_power(
    sets: Mapping[str, Tensor], anchor: Tensor, directions: Iterable[Tensor], p: float = 2.0
) -> dict[str, Tensor]:
    """``SW_p^p(X, anchor) = (1/L) sum_l (1/N) sum_j |sort(X theta_l)_j - sort(anchor theta_l)_j|^p`` per set.

    Every set must have the anchor's number of rows (truncate beforehand). The anchor's
    projections are sorted once per chunk and shared by all sets. Differentiable through the
    sort (the gradient follows the sorting permutation); sums accumulate, and the result is
    returned, in float64 (cast it back for a loss in the features' dtype).

    Args:
        sets: name -> ``(N, d)`` features.
        anchor: ``(N, d)`` features every set is compared with.
        directions: ``(d, c)`` unit-direction chunks (e.g. :func:`unit_directions`), in the
            features' dtype and device.
        p: order.

    Returns:
        name -> scalar tensor ``SW_p^p`` (take the ``1/p`` power for the distance itself).
    """
    n = anchor.shape[0]
    for name, x in sets.items():
        if x.shape != anchor.shape:
            raise ShapeError(
                f"sliced Wasserstein set {name!r} has shape {tuple(x.shape)}, the anchor {tuple(anchor.shape)}.",
                "truncate every set to a common number of rows of the same feature dimension",
            )
    totals: dict[str, Tensor] = {}
    count = 0
    for theta in directions:
        anchor_sorted = torch.sort(anchor @ theta, dim=0).values
        for name, x in sets.items():
            diff = torch.sort(x @ theta, dim=0).values - anchor_sorted
            term = diff.abs().pow(p).sum(dtype=torch.float64)
            totals[name] = term if name not in totals else totals[name] + term
        count += int(theta.shape[1])
    if count == 0:
        raise ValueError("sliced Wasserstein needs at least one direction")
    return {name: t / (n * count) for name, t in totals.items()}


def sliced_wasserstein(x: Tensor, y: Tensor, directions: Iterable[Tensor], p: float = 2.0) -> Tensor:
    """``SW_p^p(x, y)`` for equal-size ``x`` and ``y`` (see :func:`sliced_wasserstein_power`)."""
    return sliced_wasserstein_power({"x": x}, y, directions, p)["x"]


def nearest_centroid(x: Tensor, centroids: Tensor, chunk: int = 16384) -> Tensor:
    """Index of the nearest centroid for every row, in row chunks (bounded memory)."""
    c_sq = centroids.pow(2).sum(1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for lo in range(0, x.shape[0], chunk):
        hi = min(lo + chunk, x.shape[0])
        out[lo:hi] = sq_dists(x[lo:hi], centroids, None, c_sq).argmin(1)
    return out


def kmeans(
    x: Tensor,
    m: int,
    *,
    iters: int = 20,
    seed: int = 0,
    chunk: int = 16384,
    on_iter: Callable[[int], object] | None = None,
) -> Tensor:
    """``m`` centroids of ``x`` in float32: seeded random initialisation, then ``iters`` Lloyd steps.

    The initial centroids are ``m`` distinct rows chosen by a CPU generator seeded ``seed``;
    clusters that end an iteration empty are re-seeded from random rows drawn by the same
    generator, so the result depends only on ``x``, ``m``, ``iters`` and ``seed``.

    Args:
        x: ``(n, d)`` fit set.
        m: number of centroids (``1 <= m <= n``).
        iters: Lloyd iterations.
        seed: generator seed.
        chunk: rows per assignment block.
        on_iter: optional callable ``on_iter(i)`` after each iteration (progress).
    """
    n = x.shape[0]
    if not 1 <= m <= n:
        raise ValueError(f"k-means needs 1 <= m <= n, got m={m}, n={n}")
    gen = torch.Generator().manual_seed(int(seed))
    x = x.float()
    centroids = x[torch.randperm(n, generator=gen)[:m].to(x.device)].clone()
    for i in range(iters):
        labels = nearest_centroid(x, centroids, chunk)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=m).to(x.dtype)
        centroids = sums / counts.clamp_min(1.0)[:, None]
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            pick = torch.randint(n, (empty.numel(),), generator=gen).to(x.device)
            centroids[empty] = x[pick]
        if on_iter is not None:
            on_iter(i)
    return centroids
