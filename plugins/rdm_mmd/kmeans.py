"""Seeded k-means (Lloyd) for Nystrom landmarks (SPEC 4, step 3)."""

from __future__ import annotations

import torch
from torch import Tensor

from rdm_mmd.kernels import sq_dists


def assign(x: Tensor, centroids: Tensor, chunk: int = 16384) -> Tensor:
    """Index of the nearest centroid for every row, in row chunks (bounded memory)."""
    c_sq = centroids.pow(2).sum(1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for lo in range(0, x.shape[0], chunk):
        hi = min(lo + chunk, x.shape[0])
        out[lo:hi] = sq_dists(x[lo:hi], centroids, None, c_sq).argmin(1)
    return out


def kmeans(x: Tensor, m: int, *, iters: int = 20, seed: int = 0, chunk: int = 16384, on_iter: object = None) -> Tensor:
    """``m`` centroids of ``x`` (fp32): seeded random init, ``iters`` Lloyd steps.

    Empty clusters are re-seeded from random data points in each iteration (same seeded
    generator), so the result depends only on ``x``, ``m``, ``iters`` and ``seed``.

    Args:
        x: ``(n, d)`` fit set.
        m: number of centroids (``<= n``).
        iters: Lloyd iterations.
        seed: generator seed.
        chunk: rows per assignment block.
        on_iter: optional callable ``on_iter(i)`` (progress).
    """
    n = x.shape[0]
    if not 1 <= m <= n:
        raise ValueError(f"k-means needs 1 <= m <= n, got m={m}, n={n}")
    gen = torch.Generator().manual_seed(int(seed))
    x = x.float()
    centroids = x[torch.randperm(n, generator=gen)[:m].to(x.device)].clone()
    for i in range(iters):
        labels = assign(x, centroids, chunk)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=m).to(x.dtype)
        centroids = sums / counts.clamp_min(1.0)[:, None]
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            pick = torch.randint(n, (empty.numel(),), generator=gen).to(x.device)
            centroids[empty] = x[pick]
        if callable(on_iter):
            on_iter(i)
    return centroids
