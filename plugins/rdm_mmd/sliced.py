"""Sliced-Wasserstein reference (a distance ablation; docs/method.md): fresh projections and real sample per call.

``SW = (1/L) sum_l mean_j |sort(theta_l . g)_j - sort(theta_l . r)_j|^p`` with ``L`` unit
directions drawn per call (in chunks), ``p = 2``, ``r`` a real sample of the same size as ``g``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.numerics import sliced_wasserstein, unit_directions
from rdm_mmd.estimator import compute_dtype, full_precision
from rdm_mmd.reference_base import Fitted
from rdm_mmd.stepped_reference import SteppedReference


class SlicedWassersteinReference(SteppedReference):
    """Tensors: ``pool`` (n, d) fp32. Header: ``projections`` (L), ``p``, ``chunk``."""

    kind: ClassVar[str] = "sliced_wasserstein"
    uses_kernel: ClassVar[bool] = False
    tensor_names: ClassVar[tuple[str, ...]] = ("pool",)

    @classmethod
    def fit(
        cls, features: Tensor, kernel: Any, *, seed: int, projections: int = 128, p: float = 2.0, chunk: int = 64
    ) -> Fitted:
        """Store the pool and the SW settings: ``projections`` directions per step, order ``p``."""
        if int(projections) < 1 or not float(p) >= 1 or int(chunk) < 1:
            raise RecipeError(
                f"sliced_wasserstein needs projections >= 1, p >= 1, chunk >= 1; got {projections}, {p}, {chunk}.",
                "use projections: 128, p: 2",
            )
        return Fitted(
            tensors={"pool": features.float().cpu()},
            header={"projections": int(projections), "p": float(p), "chunk": int(chunk)},
        )

    def _validate(self) -> None:
        super()._validate()
        pool = self.tensors["pool"]
        if pool.dim() != 2 or pool.shape[1] != self.dim:
            raise ArtifactError(
                f"sliced_wasserstein pool has shape {tuple(pool.shape)}, header dim {self.dim}.",
                "rebuild it with `rdm reference build`",
            )

    def distance(self, features: Tensor) -> Tensor:
        """SW^p against a real sample of the batch's size, with directions drawn for this step."""
        self.check_dim(features)
        gen = self._next_generator()
        x = features.to(compute_dtype(features))
        real = self.real_sample(x.shape[0], gen).to(device=x.device, dtype=x.dtype)
        directions = unit_directions(
            self.dim,
            int(self.header["projections"]),
            gen,
            chunk=int(self.header["chunk"]),
            dtype=x.dtype,
            device=x.device,
        )
        with full_precision(x):
            return sliced_wasserstein(x, real, directions, float(self.header["p"])).to(x.dtype)
