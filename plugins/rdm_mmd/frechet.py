"""Frechet-distance reference (a distance ablation of docs/method.md), float64 eigenvalue form.

``FD = ||mu_g - mu_r||^2 + Tr S_g + Tr S_r - 2 sum_k sqrt(max(lambda_k(S_r^1/2 S_g S_r^1/2), 0))``
with ``S_g`` the unbiased covariance + eps I, symmetrised before ``eigvalsh``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from rdm_core.errors import ArtifactError, ShapeError
from rdm_mmd.estimator import compute_dtype, full_precision
from rdm_mmd.reference_base import Fitted, ReferenceBase


def covariance(x: Tensor) -> Tensor:
    """Unbiased covariance (d, d) of the rows of ``x`` (fp64 in, fp64 out)."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / (x.shape[0] - 1)


def psd_sqrt(m: Tensor) -> Tensor:
    """Symmetric square root via ``eigh``, negative eigenvalues clamped to 0."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


class FrechetReference(ReferenceBase):
    """Tensors (fp64): ``mu_r`` (d,), ``sigma_r`` (d, d), ``sigma_r_half`` (d, d). Header: ``tr_sigma_r``, ``eps``."""

    kind: ClassVar[str] = "frechet"
    uses_kernel: ClassVar[bool] = False
    tensor_names: ClassVar[tuple[str, ...]] = ("mu_r", "sigma_r", "sigma_r_half")

    @classmethod
    def fit(cls, features: Tensor, kernel: Any, *, seed: int, eps: float = 1e-6) -> Fitted:
        """Mean and covariance of the pool in fp64; ``S_r^1/2`` from ``eigh(S_r + eps I)``."""
        x = features.double().cpu()
        sigma = covariance(x)
        reg = sigma.clone()
        reg.diagonal().add_(eps)
        return Fitted(
            tensors={"mu_r": x.mean(0), "sigma_r": sigma, "sigma_r_half": psd_sqrt(reg)},
            header={"tr_sigma_r": float(sigma.trace()), "eps": float(eps)},
        )

    def _validate(self) -> None:
        super()._validate()
        d = self.dim
        mu, s, h = self.tensors["mu_r"], self.tensors["sigma_r"], self.tensors["sigma_r_half"]
        if mu.shape != (d,) or s.shape != (d, d) or h.shape != (d, d):
            raise ArtifactError(
                f"frechet reference tensors disagree with dim {d}: mu_r {tuple(mu.shape)}, "
                f"sigma_r {tuple(s.shape)}, sigma_r_half {tuple(h.shape)}.",
                "rebuild it with `rdm reference build`",
            )

    def distance(self, features: Tensor) -> Tensor:
        """FD between the batch's Gaussian fit and the reference's (gradient through eigvalsh)."""
        self.check_dim(features)
        with full_precision(features):
            return self._distance(features)

    def _distance(self, features: Tensor) -> Tensor:
        if features.shape[0] < 2:
            raise ShapeError("the Frechet distance needs at least 2 generated rows.", "use a batch of N >= 2")
        eps = float(self.header.get("eps", 1e-6))
        x = features.double()
        mu_r = self.tensors["mu_r"].to(x.device)
        half = self.tensors["sigma_r_half"].to(x.device)
        mu_g = x.mean(0)
        sigma_g = covariance(x) + eps * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        inner = half @ sigma_g @ half
        lam = torch.linalg.eigvalsh((inner + inner.T) / 2)
        # sqrt only where lambda > 0: keeps the value exact and the gradient finite at 0
        pos = lam > 0
        roots = torch.where(pos, lam.clamp_min(torch.finfo(lam.dtype).tiny).sqrt(), torch.zeros_like(lam))
        fd = (mu_g - mu_r).pow(2).sum() + sigma_g.trace() + float(self.header["tr_sigma_r"]) - 2.0 * roots.sum()
        return fd.to(compute_dtype(features))
