"""Exact-pool reference: fresh real subsample per step (a distance ablation; docs/method.md).

``distance(g) = k_gg - 2 * (1/(N N_r)) sum_{i,j} k(g_i, r_j) + k_rr`` with ``r`` a seeded
random subsample of the stored pool, drawn anew for every call (same rows on every rank).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from rdm_core.errors import ArtifactError, RecipeError
from rdm_mmd.estimator import DEFAULT_GEN_CHUNK, kernel_mean_constant, mmd_loss
from rdm_mmd.reference_base import Fitted
from rdm_mmd.stepped_reference import SteppedReference


class ExactReference(SteppedReference):
    """Tensors: ``pool`` (n, d) fp32. Header adds ``sample_size`` (None -> the batch size N).

    Runtime options: ``gen_chunk``, ``memory_budget``, ``method`` (as Nystrom).
    """

    kind: ClassVar[str] = "exact"
    tensor_names: ClassVar[tuple[str, ...]] = ("pool",)

    @classmethod
    def runtime_options(cls) -> tuple[str, ...]:
        return ("gen_chunk", "memory_budget", "method")

    @classmethod
    def fit(
        cls, features: Tensor, kernel: Any, *, seed: int, krr_subsample: int = 100000, sample_size: int | None = None
    ) -> Fitted:
        """Store the pool; ``k_rr`` over a seeded random subsample.

        Args:
            krr_subsample: rows of the seeded random subsample used for ``k_rr``.
            sample_size: real rows drawn per step (``None``: the batch size N).
        """
        if sample_size is not None and int(sample_size) < 1:
            raise RecipeError(f"sample_size must be >= 1, got {sample_size!r}.", "omit it to use the batch size N")
        k_rr, _ = kernel_mean_constant(features.float(), kernel, subsample=krr_subsample, seed=seed)
        return Fitted(
            tensors={"pool": features.float().cpu()},
            header={
                "sample_size": None if sample_size is None else int(sample_size),
                "krr_n": int(min(int(krr_subsample), features.shape[0])),
            },
            k_rr=k_rr,
        )

    def _validate(self) -> None:
        super()._validate()
        pool = self.tensors["pool"]
        if pool.dim() != 2 or pool.shape[1] != self.dim:
            raise ArtifactError(
                f"exact reference pool has shape {tuple(pool.shape)}, header dim {self.dim}.",
                "rebuild it with `rdm reference build`",
            )

    def distance(self, features: Tensor) -> Tensor:
        """Raw exact MMD^2 against a fresh seeded real subsample (size ``sample_size`` or N)."""
        self.check_dim(features)
        n = int(self.header.get("sample_size") or features.shape[0])
        real = self.real_sample(n, self._next_generator())
        return mmd_loss(
            features,
            real,
            None,
            self.kernel,
            float(self.header["k_rr"]),
            gen_chunk=int(self.options.get("gen_chunk", DEFAULT_GEN_CHUNK)),
            memory_budget=self.options.get("memory_budget"),
            method=self.options.get("method", "auto"),
        )
