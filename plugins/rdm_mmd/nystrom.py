"""Nystrom reference set: landmarks Z, coefficients alpha, constant k_rr (docs/method.md).

``distance(g) = k_gg - 2 * mean_i K(g_i, Z) @ alpha + k_rr`` with ``alpha = (K_ZZ + eps I)^-1 mu``
and ``mu_m = mean_j k(z_m, r_j)`` over the whole pool. This is the paper's
``psi(g)^T mean psi(r)`` with ``psi(x) = K_ZZ^-1/2 k(x, Z)``, folded into one vector.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from rdm_core.console import progress
from rdm_core.errors import RecipeError
from rdm_core.numerics import kmeans, seeded_rows
from rdm_mmd.estimator import DEFAULT_GEN_CHUNK, kernel_mean_constant, mmd_loss, rows_for_budget
from rdm_mmd.reference_base import Fitted, ReferenceBase


def _nystrom_alpha(
    landmarks: Tensor, pool: Tensor, kernel: Any, *, jitter: float, memory_budget: int | None, on_chunk: Any = None
) -> tuple[Tensor, Tensor]:
    """``(alpha, mu)`` in fp64: Cholesky of ``K_ZZ + jitter I``, ``mu`` streamed over the pool."""
    z = landmarks.double()
    kzz = kernel.gram(z, z)
    kzz.diagonal().add_(jitter)
    chol, info = torch.linalg.cholesky_ex(kzz)
    if int(info) != 0:
        raise RecipeError(
            f"K_ZZ + {jitter} I is not positive definite (Cholesky failed at column {int(info)}).",
            "increase the jitter, lower --landmarks, or check the bandwidth (too small sigma)",
        )
    mu = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    rows = rows_for_budget(z.shape[0], 8, memory_budget)
    for lo in range(0, pool.shape[0], rows):
        hi = min(lo + rows, pool.shape[0])
        mu += kernel.gram(z, pool[lo:hi].to(device=z.device, dtype=torch.float64)).sum(1)
        if on_chunk is not None:
            on_chunk(hi - lo)
    mu /= pool.shape[0]
    alpha = torch.cholesky_solve(mu[:, None], chol)[:, 0]
    return alpha, mu


class NystromReference(ReferenceBase):
    """The production reference: ``landmarks`` (M, d) fp32 and ``alpha`` (M,) fp32 + header ``k_rr``.

    Runtime options: ``gen_chunk`` (repulsion rows per block), ``memory_budget`` (bytes of block
    scratch), ``method`` (``auto``/``fused``/``checkpoint``).
    """

    kind: ClassVar[str] = "nystrom"
    tensor_names: ClassVar[tuple[str, ...]] = ("landmarks", "alpha")

    @classmethod
    def runtime_options(cls) -> tuple[str, ...]:
        return ("gen_chunk", "memory_budget", "method")

    @classmethod
    def fit(
        cls,
        features: Tensor,
        kernel: Any,
        *,
        seed: int,
        landmarks: int = 4096,
        fit_subsample: int = 200000,
        kmeans_iters: int = 20,
        krr_subsample: int = 100000,
        krr_rows: str = "random",
        jitter: float = 1e-6,
        memory_budget: int | None = None,
    ) -> Fitted:
        """Landmarks, ``alpha`` and ``k_rr`` of a feature pool (the build steps of docs/method.md).

        Args:
            landmarks: M. When ``M >=`` the fit-set size, the fit set itself is the landmark set
                (no clustering; with the whole pool this is the exact MMD).
            fit_subsample, kmeans_iters: k-means fit-set size and Lloyd iterations.
            krr_subsample: rows of the seeded random subsample used for ``k_rr``.
            krr_rows: ``random`` (seeded subsample) or ``first`` (the pool's first ``krr_subsample``
                rows, the authors' rule; a parity option, off by default).
            jitter: added to the diagonal of ``K_ZZ`` before the fp64 Cholesky.
            memory_budget: bytes of scratch for the streamed ``mu`` (and, as a runtime option,
                for later distances).
        """
        if krr_rows not in ("random", "first"):
            raise RecipeError(
                f"krr_rows must be 'random' or 'first', got {krr_rows!r}.", "set objective.distance.args.krr_rows"
            )
        m = int(landmarks)
        if m < 1:
            raise RecipeError(
                f"landmarks must be >= 1, got {landmarks!r}.", "set objective.distance.landmarks (e.g. 4096)"
            )
        n = features.shape[0]
        fit = seeded_rows(features, int(fit_subsample), seed).float()
        with progress(transient=True) as bar:
            if m >= fit.shape[0]:
                z = fit
            else:
                task = bar.add_task("k-means", total=kmeans_iters, status=f"M={m}")
                z = kmeans(fit, m, iters=kmeans_iters, seed=seed, on_iter=lambda i: bar.advance(task))
            task = bar.add_task("kernel mean", total=n, status=f"n={n}")
            alpha, _ = _nystrom_alpha(
                z, features, kernel, jitter=jitter, memory_budget=memory_budget, on_chunk=lambda k: bar.advance(task, k)
            )
        k_rr, _ = kernel_mean_constant(features.float(), kernel, subsample=krr_subsample, seed=seed, rows=krr_rows)
        return Fitted(
            tensors={"landmarks": z.float().cpu(), "alpha": alpha.float().cpu()},
            header={
                "landmarks_requested": m,  # more than the fit set: every fit row is a landmark
                "jitter": float(jitter),
                "kmeans_iters": int(kmeans_iters),
                "fit_n": int(fit.shape[0]),
                "krr_n": int(min(int(krr_subsample), n)),
                "krr_rows": krr_rows,
            },
            k_rr=k_rr,
            landmarks=int(z.shape[0]),
            options={} if memory_budget is None else {"memory_budget": memory_budget},
        )

    def _validate(self) -> None:
        super()._validate()
        z, a = self.tensors["landmarks"], self.tensors["alpha"]
        if z.dim() != 2 or z.shape[1] != self.dim or a.shape != (z.shape[0],):
            from rdm_core.errors import ArtifactError

            raise ArtifactError(
                f"nystrom reference tensors disagree: landmarks {tuple(z.shape)}, alpha "
                f"{tuple(a.shape)}, header dim {self.dim}.",
                "rebuild it with `rdm reference build`",
            )

    @property
    def landmarks(self) -> Tensor:
        return self.tensors["landmarks"]

    @property
    def alpha(self) -> Tensor:
        return self.tensors["alpha"]

    @property
    def k_rr(self) -> float:
        return float(self.header["k_rr"])

    def attraction(self, features: Tensor) -> Tensor:
        """``k_gr = mean_i K(g_i, Z) @ alpha`` (differentiable in ``features``)."""
        from rdm_mmd.estimator import cross_kernel_mean

        self.check_dim(features)
        return cross_kernel_mean(
            features,
            self.landmarks,
            self.kernel,
            self.alpha,
            memory_budget=self.options.get("memory_budget"),
            method=self.options.get("method", "auto"),
        )

    def distance(self, features: Tensor) -> Tensor:
        """Raw ``L_e = k_gg - 2 k_gr + k_rr`` of the (global) generated batch."""
        self.check_dim(features)
        return mmd_loss(
            features,
            self.landmarks,
            self.alpha,
            self.kernel,
            self.k_rr,
            gen_chunk=int(self.options.get("gen_chunk", DEFAULT_GEN_CHUNK)),
            memory_budget=self.options.get("memory_budget"),
            method=self.options.get("method", "auto"),
        )
