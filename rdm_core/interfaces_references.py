"""The kernel and reference-set contracts: the frozen data side of each encoder's distance.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor


@runtime_checkable
class Kernel(Protocol):
    """A positive-definite kernel on feature rows with a fixed bandwidth."""

    name: str
    bandwidth: float

    def gram(self, x: Tensor, y: Tensor) -> Tensor:
        """``(n, m)`` matrix of ``k(x_i, y_j)``."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters, stored in reference headers."""
        ...


@runtime_checkable
class ReferenceSet(Protocol):
    """The frozen data side of one encoder's distance.

    A Nystrom reference (landmarks + coefficients + ``k_rr``), an exact pool, an RFF bank, or
    an ablation bank. ``distance`` returns the raw per-encoder loss ``L_e`` of generated
    features (for MMD: exact within-batch repulsion - 2 x attraction + ``k_rr``).
    """

    #: the registry name of the reference kind (``nystrom``, ``exact``, ...), stored in the header
    kind: str
    #: JSON-ready build record (encoder, kernel, bandwidth, sizes, seed, source fingerprint)
    header: dict[str, Any]

    @property
    def dim(self) -> int:
        """Feature dimension the reference was built for."""
        ...

    def distance(self, features: Tensor) -> Tensor:
        """Raw distance of generated features to the reference.

        Args:
            features: ``(N, dim)`` float32 features of the whole generated batch, on the
                reference's device (the trainer passes the all-gathered global batch).

        Returns:
            A 0-dim float tensor, differentiable with respect to ``features``.
        """
        ...

    def to(self, device: torch.device | str) -> ReferenceSet:
        """Move the reference's tensors to ``device``; returns self."""
        ...

    def save(self, path: str) -> None:
        """Write the reference (safetensors + JSON header) atomically."""
        ...
