"""Brute-force float64 references for the rdm_mmd tests (written independently of the plugin)."""

from __future__ import annotations

import numpy as np
import torch


def pair_d2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared distances by explicit differences (no norm expansion)."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def kernel_matrix(name: str, x: torch.Tensor, y: torch.Tensor, sigma: float, **args) -> torch.Tensor:
    d2 = pair_d2(x, y)
    if name == "gaussian":
        return torch.exp(-d2 / (2 * sigma**2))
    if name == "imq":
        return (1 + d2 / sigma**2) ** (-args.get("exponent", 0.5))
    if name == "laplace":
        # sqrt with a zero-safe gradient on the diagonal
        r = torch.where(d2 > 0, d2.clamp_min(1e-300).sqrt(), torch.zeros_like(d2))
        return torch.exp(-r / sigma)
    if name == "multiscale":
        scales = args.get("scales", (0.1, 0.2, 0.4, 0.8, 1.6))
        return sum(torch.exp(-d2 / (2 * (s * sigma) ** 2)) for s in scales) / len(scales)
    raise ValueError(name)


def mmd_v(g: torch.Tensor, r: torch.Tensor, name: str, sigma: float, **args) -> torch.Tensor:
    """Biased (V-statistic) squared MMD between two samples."""
    return (
        kernel_matrix(name, g, g, sigma, **args).mean()
        - 2 * kernel_matrix(name, g, r, sigma, **args).mean()
        + kernel_matrix(name, r, r, sigma, **args).mean()
    )


def median_heuristic(x: np.ndarray) -> float:
    n = x.shape[0]
    vals = [float(((x[i] - x[j]) ** 2).sum()) for i in range(n) for j in range(i + 1, n)]
    return float(np.sqrt(np.median(vals)))  # the usual median: mean of the two middle values when even
