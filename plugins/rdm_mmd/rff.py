"""Random-Fourier-feature reference: ``||mean_i phi(g_i) - mu_r||^2`` (a distance ablation; docs/method.md).

``phi(x) = sqrt(2/D) cos(x W + b)`` with ``W ~ N(0, sigma^-2)`` (d, D) and ``b ~ U[0, 2 pi)``
approximates the Gaussian kernel of bandwidth ``sigma``; all three are frozen at build time.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from rdm_core.errors import ArtifactError, RecipeError
from rdm_mmd.estimator import compute_dtype, full_precision, rows_for_budget
from rdm_mmd.reference_base import Fitted, ReferenceBase


def rff_features_sum(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``sum_i sqrt(2/D) cos(x_i W + b)`` (D,)."""
    return torch.cos(torch.addmm(b, x, w)).sum(0) * math.sqrt(2.0 / w.shape[1])


class RFFReference(ReferenceBase):
    """Tensors: ``W`` (d, D), ``b`` (D,), ``mu_r`` (D,), all fp32. Gaussian kernels only.

    Runtime option: ``memory_budget`` (bytes of ``(rows, D)`` scratch per block).
    """

    kind: ClassVar[str] = "rff"
    tensor_names: ClassVar[tuple[str, ...]] = ("W", "b", "mu_r")

    @classmethod
    def runtime_options(cls) -> tuple[str, ...]:
        return ("memory_budget",)

    @classmethod
    def fit(
        cls, features: Tensor, kernel: Any, *, seed: int, num_features: int = 4096, mean_subsample: int | None = None
    ) -> Fitted:
        """Draw ``W, b`` (seeded) and ``mu_r`` over the pool (or a seeded random subsample).

        Args:
            num_features: D (the eval banks use 4096 with seed 99999).
            mean_subsample: rows for ``mu_r`` (None: the whole pool); drawn at random, not the
                first rows of a sorted pool.
        """
        if kernel.name != "gaussian":  # a Kernel, resolved by build()
            raise RecipeError(
                f"random Fourier features approximate a Gaussian kernel, got {kernel.name!r}.",
                "use --kernel gaussian with --kind rff, or another reference kind",
            )
        if int(num_features) < 1:
            raise RecipeError(f"num_features must be >= 1, got {num_features!r}.", "use e.g. num_features: 4096")
        d, big_d = features.shape[1], int(num_features)
        gen = torch.Generator().manual_seed(int(seed))
        w = torch.randn(d, big_d, generator=gen, dtype=torch.float64) / kernel.bandwidth
        b = torch.rand(big_d, generator=gen, dtype=torch.float64) * (2.0 * math.pi)
        n = features.shape[0]
        rows = features
        if mean_subsample is not None and int(mean_subsample) < n:
            idx = torch.randperm(n, generator=gen)[: int(mean_subsample)]
            rows = features.index_select(0, idx.to(features.device))
        acc = torch.zeros(big_d, dtype=torch.float64)
        step = rows_for_budget(big_d, 8, None)
        for lo in range(0, rows.shape[0], step):
            acc += rff_features_sum(rows[lo : lo + step].double().cpu(), w, b)
        mu = acc / rows.shape[0]
        return Fitted(
            tensors={"W": w.float(), "b": b.float(), "mu_r": mu.float()},
            header={"num_features": big_d, "mean_n": int(rows.shape[0])},
        )

    def _validate(self) -> None:
        super()._validate()
        w, b, mu = self.tensors["W"], self.tensors["b"], self.tensors["mu_r"]
        if w.dim() != 2 or w.shape[0] != self.dim or b.shape != (w.shape[1],) or mu.shape != (w.shape[1],):
            raise ArtifactError(
                f"rff reference tensors disagree: W {tuple(w.shape)}, b {tuple(b.shape)}, "
                f"mu_r {tuple(mu.shape)}, header dim {self.dim}.",
                "rebuild it with `rdm reference build`",
            )

    def feature_mean(self, features: Tensor) -> Tensor:
        """``mean_i phi(g_i)`` (D,), blockwise with checkpointing (memory O(block x D))."""
        dtype = compute_dtype(features)
        x = features.to(dtype)
        w, b = self.tensors["W"].to(dtype), self.tensors["b"].to(dtype)
        step = rows_for_budget(w.shape[1], x.element_size(), self.options.get("memory_budget"))
        total = x.new_zeros(w.shape[1])
        for lo in range(0, x.shape[0], step):
            part = x[lo : lo + step]
            if torch.is_grad_enabled() and x.requires_grad:
                total = total + checkpoint(rff_features_sum, part, w, b, use_reentrant=False)
            else:
                total = total + rff_features_sum(part, w, b)
        return total / x.shape[0]

    def distance(self, features: Tensor) -> Tensor:
        """``||mean_i phi(g_i) - mu_r||^2`` (deterministic, no per-step real sample)."""
        self.check_dim(features)
        with full_precision(features):
            mean = self.feature_mean(features)
            return (mean - self.tensors["mu_r"].to(mean.dtype)).pow(2).sum()
