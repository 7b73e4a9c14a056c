"""rdm_core.numerics against independent float64 computations (numpy / scipy / explicit loops).

These functions are the single home of the distances, the median bandwidth, sliced Wasserstein
and k-means used by reference building, training and evaluation alike.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from rdm_core.errors import NonFiniteError, RecipeError, ShapeError
from rdm_core.numerics import (
    kmeans,
    median_bandwidth,
    median_sq_distance,
    seeded_rows,
    sliced_wasserstein,
    sliced_wasserstein_power,
    sq_dists,
    unit_directions,
)


def _rows(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _subsample(x: torch.Tensor, k: int, seed: int) -> np.ndarray:
    """The documented subsample: the first k of a randperm drawn by a CPU generator seeded ``seed``."""
    take = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:k]
    return x[take].double().numpy()


# -- pairwise squared distances -------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (5, 7, 3), (9, 2, 6)])
def test_sq_dists_matches_explicit_differences(n, m, d):
    x, y = _rows(n, d, 0, 2.0), _rows(m, d, 1, 2.0)
    expected = ((x.numpy()[:, None, :] - y.numpy()[None, :, :]) ** 2).sum(-1)
    assert np.allclose(sq_dists(x, y).numpy(), expected, atol=1e-12, rtol=0)  # measured: 7e-15
    # precomputed norms give the same matrix
    assert torch.allclose(sq_dists(x, y, x.pow(2).sum(1), y.pow(2).sum(1)), sq_dists(x, y))


def test_sq_dists_clamps_round_off_and_checks_dims():
    x = torch.full((4, 8), 1e4)
    assert (sq_dists(x, x) >= 0).all()
    with pytest.raises(ShapeError, match="feature dimensions differ"):
        sq_dists(torch.zeros(2, 3), torch.zeros(2, 4))


# -- the median heuristic ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 5, 6, 30, 31])
def test_median_is_the_usual_median_of_squared_pairwise_distances(n):
    # n = 4 -> 6 pairs and n = 5 -> 10 pairs (even: mean of the two middle values);
    # n = 6 -> 15 pairs (odd: the middle value)
    x = _rows(n, 3, n)
    d2 = pdist(x.numpy(), "sqeuclidean")
    assert median_sq_distance(x, subsample=n) == pytest.approx(float(np.median(d2)), rel=1e-12)
    assert median_bandwidth(x, scale=0.25, subsample=n) == pytest.approx(0.25 * math.sqrt(np.median(d2)), rel=1e-12)


def test_median_of_an_even_count_is_not_the_lower_middle_value():
    # 4 points on a line: squared pairwise distances 1, 4, 9, 1, 4, 1 -> sorted 1 1 1 4 4 9;
    # the usual median is (1 + 4) / 2 = 2.5 (torch.median would say 1)
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    assert median_sq_distance(x, subsample=4) == 2.5
    assert median_bandwidth(x, subsample=4) == pytest.approx(math.sqrt(2.5))


def test_median_uses_a_seeded_random_subsample_not_the_first_rows():
    x = _rows(400, 4, 0)
    x[:200] *= 10  # a sorted pool: the first rows differ from the rest
    a = median_bandwidth(x, subsample=50, seed=3)
    assert a == median_bandwidth(x, subsample=50, seed=3)
    assert a != median_bandwidth(x, subsample=50, seed=4)
    assert a != median_bandwidth(x[:50], subsample=50, seed=3)
    assert a == pytest.approx(math.sqrt(np.median(pdist(_subsample(x, 50, 3), "sqeuclidean"))), rel=1e-12)
    assert torch.equal(seeded_rows(x, 50, 3), torch.from_numpy(_subsample(x, 50, 3)))


def test_median_floor_and_errors():
    assert median_bandwidth(torch.ones(5, 3)) == pytest.approx(1e-5)
    assert median_bandwidth(torch.ones(5, 3), scale=0.5) == pytest.approx(0.5e-5)
    with pytest.raises(ShapeError):
        median_bandwidth(torch.ones(1, 3))
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(RecipeError, match="bandwidth scale"):
            median_bandwidth(torch.randn(5, 3), scale=bad)
    x = torch.randn(5, 3)
    x[2, 1] = float("nan")
    with pytest.raises(NonFiniteError):
        median_bandwidth(x)


# -- unit directions and sliced Wasserstein ------------------------------------------------------


def test_unit_directions_are_seeded_unit_chunks():
    chunks = list(unit_directions(5, 150, torch.Generator().manual_seed(0), chunk=64))
    assert [c.shape for c in chunks] == [(5, 64), (5, 64), (5, 22)]
    theta = torch.cat(chunks, dim=1)
    assert torch.allclose(theta.norm(dim=0), torch.ones(150))
    # each chunk is an N(0, I) float32 draw from the one generator, normalised per column
    gen = torch.Generator().manual_seed(0)
    raw = torch.cat([torch.randn(5, c, generator=gen) for c in (64, 64, 22)], dim=1)
    assert torch.allclose(theta, raw / raw.norm(dim=0, keepdim=True))
    as64 = torch.cat(list(unit_directions(5, 150, torch.Generator().manual_seed(0), dtype=torch.float64)), dim=1)
    assert as64.dtype == torch.float64 and torch.allclose(as64.float(), theta)
    with pytest.raises(ValueError):
        next(unit_directions(0, 3, torch.Generator()))


def _sw_power_loop(x: np.ndarray, y: np.ndarray, theta: np.ndarray, p: float) -> float:
    per_direction = []
    for j in range(theta.shape[1]):
        a = np.sort(x @ theta[:, j])
        b = np.sort(y @ theta[:, j])
        per_direction.append(np.mean(np.abs(a - b) ** p))
    return float(np.mean(per_direction))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_sliced_wasserstein_matches_a_per_direction_loop(p):
    x, y, z = _rows(40, 6, 1), _rows(40, 6, 2, 1.5), _rows(40, 6, 3) + 1.0
    theta = torch.cat(list(unit_directions(6, 100, torch.Generator().manual_seed(7), chunk=16)), dim=1).double()
    chunks = list(theta.split(16, dim=1))
    got = sliced_wasserstein_power({"x": x, "z": z}, y, chunks, p)
    assert got["x"].dtype == torch.float64
    assert float(got["x"]) == pytest.approx(_sw_power_loop(x.numpy(), y.numpy(), theta.numpy(), p), rel=1e-12)
    assert float(got["z"]) == pytest.approx(_sw_power_loop(z.numpy(), y.numpy(), theta.numpy(), p), rel=1e-12)
    assert float(sliced_wasserstein(x, y, chunks, p)) == pytest.approx(float(got["x"]), rel=1e-12)
    assert float(sliced_wasserstein(y, y, chunks, p)) == 0.0


def test_sliced_wasserstein_gradient_matches_autograd_of_the_loop():
    x = _rows(30, 4, 4).requires_grad_()
    y = _rows(30, 4, 5, 2.0)
    theta = torch.cat(list(unit_directions(4, 50, torch.Generator().manual_seed(1))), dim=1).double()
    (grad,) = torch.autograd.grad(sliced_wasserstein(x, y, [theta]), x)
    xb = x.detach().clone().requires_grad_()
    loop = torch.stack(
        [((torch.sort(xb @ theta[:, j]).values - torch.sort(y @ theta[:, j]).values) ** 2).mean() for j in range(50)]
    ).mean()
    (expected,) = torch.autograd.grad(loop, xb)
    assert torch.allclose(grad, expected, atol=1e-12)


def test_sliced_wasserstein_refuses_unequal_sets():
    with pytest.raises(ShapeError, match="truncate"):
        sliced_wasserstein(torch.zeros(5, 3), torch.zeros(6, 3), [torch.eye(3)])


# -- k-means --------------------------------------------------------------------------------------


def _lloyd_numpy(x: np.ndarray, init: np.ndarray, iters: int) -> np.ndarray:
    c = init.copy()
    for _ in range(iters):
        labels = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1).argmin(1)
        c = np.stack([x[labels == k].mean(0) for k in range(len(c))])
    return c


def test_kmeans_equals_a_numpy_lloyd_from_the_seeded_initialisation():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[8.0, 0.0], [-8.0, 0.0], [0.0, 8.0], [0.0, -8.0]])
    x = torch.cat([c + torch.randn(60, 2, generator=gen) for c in centres])
    init = x[torch.randperm(240, generator=torch.Generator().manual_seed(5))[:4]].double().numpy()
    got = kmeans(x, 4, iters=6, seed=5, chunk=37)  # chunking must not matter
    expected = _lloyd_numpy(x.double().numpy(), init, 6)
    assert got.dtype == torch.float32
    assert np.allclose(got.double().numpy(), expected, atol=1e-5)
    assert torch.equal(got, kmeans(x, 4, iters=6, seed=5))


def test_kmeans_reseeds_empty_clusters_and_reports_progress():
    dup = torch.cat([torch.zeros(10, 2), torch.ones(10, 2)])
    seen = []
    c = kmeans(dup, 5, iters=5, seed=1, on_iter=seen.append)  # 5 centroids on 2 distinct points
    assert seen == [0, 1, 2, 3, 4]
    assert torch.isfinite(c).all() and set(map(tuple, c.tolist())) <= {(0.0, 0.0), (1.0, 1.0)}
    with pytest.raises(ValueError, match="1 <= m <= n"):
        kmeans(dup, 21)
