"""Nystrom reference set: landmarks Z, coefficients alpha, constant k_rr (docs/method.md).

``distance(g) = k_gg - 2 * mean_i K(g_i, Z) @ alpha + k_rr`` with ``alpha = (K_ZZ + eps I)^-1 mu``
and ``mu_m = mean_j k(z_m, r_j)`` over the whole pool. This is the paper's
``psi(g)^T mean psi(r)`` with ``psi(x) = K_ZZ^-1/2 k(x, Z)``, folded into one vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rdm_core.console import progress
from rdm_core.errors import RecipeError
from rdm_core.numerics import kmeans
from rdm_mmd.estimator import DEFAULT_GEN_CHUNK, kernel_mean_constant, mmd_loss, rows_for_budget
from rdm_mmd.reference_base import ReferenceBase, check_features, make_header, resolve_kernel


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
    @torch.no_grad()
    def build(
        cls,
        features: Tensor,
        kernel: Any = "gaussian",
        *,
        landmarks: int = 4096,
        seed: int = 0,
        encoder: Any = None,
        bandwidth_scale: float = 1.0,
        source_fingerprint: str | None = None,
        joint: Mapping[str, Any] | None = None,
        kernel_args: Mapping[str, Any] | None = None,
        bandwidth_subsample: int = 10000,
        fit_subsample: int = 200000,
        kmeans_iters: int = 20,
        krr_subsample: int = 100000,
        krr_rows: str = "random",
        jitter: float = 1e-6,
        memory_budget: int | None = None,
        **options: Any,
    ) -> NystromReference:
        """Build from a feature pool (the steps in docs/method.md).

        Args:
            features: ``(n, d)`` reference pool (any float dtype; landmarks are fit in fp32).
            kernel: a Kernel, or a kernel name built at ``median_bandwidth(features) * bandwidth_scale``.
            landmarks: M. When ``M >=`` the fit-set size, the fit set itself is the landmark set
                (no clustering; with the whole pool this is the exact MMD).
            seed: seeds the fit subsample, k-means, the bandwidth subsample and the k_rr subsample.
            encoder: EncoderSpec, its dict, or a name (stored in the header).
            bandwidth_scale: recorded in the header (and applied when ``kernel`` is a name).
            source_fingerprint: identity of the source images (default: hash of ``features``).
            joint: ``{beta, s_txt, d_img, d_txt}`` for joint image-text features.
            fit_subsample, kmeans_iters: k-means fit-set size and Lloyd iterations.
            krr_subsample: rows of the seeded random subsample used for ``k_rr``.
            krr_rows: ``random`` (seeded subsample) or ``first`` (the pool's first ``krr_subsample``
                rows, the authors' rule; a parity option, off by default).
            jitter: added to the diagonal of ``K_ZZ`` before the fp64 Cholesky.
            memory_budget: bytes of scratch for the streamed ``mu`` and later distances.
            options: runtime options (``gen_chunk``, ``method``).
        """
        check_features(features)
        if krr_rows not in ("random", "first"):
            raise RecipeError(f"krr_rows must be 'random' or 'first', got {krr_rows!r}.", "set distance.args.krr_rows")
        kern = resolve_kernel(
            kernel,
            features,
            bandwidth_scale=bandwidth_scale,
            bandwidth_subsample=bandwidth_subsample,
            seed=seed,
            kernel_args=kernel_args,
        )
        n = features.shape[0]
        gen = torch.Generator().manual_seed(int(seed))
        fit_idx = torch.randperm(n, generator=gen)[: min(int(fit_subsample), n)]
        fit = features.index_select(0, fit_idx.to(features.device)).float()
        m = int(landmarks)
        if m < 1:
            raise RecipeError(
                f"landmarks must be >= 1, got {landmarks!r}.", "set objective.distance.landmarks (e.g. 4096)"
            )
        with progress(transient=True) as bar:
            if m >= fit.shape[0]:
                z = fit
            else:
                task = bar.add_task("k-means", total=kmeans_iters, status=f"M={m}")
                z = kmeans(fit, m, iters=kmeans_iters, seed=seed, on_iter=lambda i: bar.advance(task))
            task = bar.add_task("kernel mean", total=n, status=f"n={n}")
            alpha, _ = _nystrom_alpha(
                z, features, kern, jitter=jitter, memory_budget=memory_budget, on_chunk=lambda k: bar.advance(task, k)
            )
        k_rr, _ = kernel_mean_constant(features.float(), kern, subsample=krr_subsample, seed=seed, rows=krr_rows)
        header = make_header(
            cls.kind,
            features,
            kern,
            encoder=encoder,
            bandwidth_scale=bandwidth_scale,
            landmarks=z.shape[0],
            seed=seed,
            source_fingerprint=source_fingerprint,
            k_rr=k_rr,
            joint=joint,
            extra={
                "landmarks_requested": m,  # more than the fit set: every fit row is a landmark
                "jitter": float(jitter),
                "kmeans_iters": int(kmeans_iters),
                "fit_n": int(fit.shape[0]),
                "krr_n": int(min(int(krr_subsample), n)),
                "krr_rows": krr_rows,
            },
        )
        tensors = {"landmarks": z.float().cpu(), "alpha": alpha.float().cpu()}
        if memory_budget is not None:
            options.setdefault("memory_budget", memory_budget)
        return cls(tensors, header, **options)

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
