"""Radial kernels on feature rows (the bandwidth rule is :func:`rdm_core.numerics.median_bandwidth`).

Every kernel here is radial: ``k(x, y) = f(||x - y||^2)``. Besides ``gram`` (the
:class:`rdm_core.interfaces.Kernel` contract) each one exposes its profile ``f`` and the
derivative ``f'`` with respect to the squared distance, which lets the estimator compute exact
gradients blockwise without autograd keeping ``(N, N)`` matrices alive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import RecipeError
from rdm_core.numerics import sq_dists

# A derivative is either a tensor or a float ``c`` meaning ``f'(d2) = c * f(d2)`` (Gaussian):
# the scalar form saves one full block of memory and one elementwise pass.
Derivative = Tensor | float


def _check_bandwidth(bandwidth: float) -> float:
    value = float(bandwidth)
    if not math.isfinite(value) or value <= 0:
        raise RecipeError(
            f"kernel bandwidth must be a positive finite number, got {bandwidth!r}.",
            "use median_bandwidth(features) or set objective.distance.bandwidth_scale > 0",
        )
    return value


class RadialKernel:
    """Base class: ``k(x, y) = profile(||x - y||^2)``.

    Subclasses implement :meth:`profile` and :meth:`profile_with_derivative`.
    """

    name: str = "radial"

    def __init__(self, bandwidth: float) -> None:
        self.bandwidth = _check_bandwidth(bandwidth)

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        """``f(d2)``; with ``inplace`` it may overwrite ``d2`` (the fused estimator's scratch block).

        Out-of-place is required whenever autograd records the call.
        """
        raise NotImplementedError

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Derivative]:
        """``(f(d2), f'(d2))``; ``f'`` may be a float ``c`` meaning ``c * f(d2)``. Overwrites ``d2``."""
        raise NotImplementedError

    def gram(self, x: Tensor, y: Tensor) -> Tensor:
        """``(n, m)`` matrix of ``k(x_i, y_j)``."""
        d2 = sq_dists(x, y)
        return self.profile(d2, inplace=not (torch.is_grad_enabled() and d2.requires_grad))

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters (stored in reference headers; ``kernel_from_description`` inverts it)."""
        return {"name": self.name, "bandwidth": self.bandwidth}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


class GaussianKernel(RadialKernel):
    """``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))`` (the production kernel)."""

    name = "gaussian"

    @property
    def gamma(self) -> float:
        return 1.0 / (2.0 * self.bandwidth**2)

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        if inplace:
            return d2.mul_(-self.gamma).exp_()
        return torch.exp(d2 * -self.gamma)

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Derivative]:
        return self.profile(d2, inplace=True), -self.gamma


class IMQKernel(RadialKernel):
    """Inverse multiquadric ``k = (1 + ||x - y||^2 / sigma^2)^(-exponent)`` (heavy tails)."""

    name = "imq"

    def __init__(self, bandwidth: float, exponent: float = 0.5) -> None:
        super().__init__(bandwidth)
        if not exponent > 0:
            raise RecipeError(f"imq exponent must be > 0, got {exponent!r}.", "use e.g. exponent: 0.5")
        self.exponent = float(exponent)

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        if inplace:
            return d2.div_(self.bandwidth**2).add_(1.0).pow_(-self.exponent)
        return (d2 / self.bandwidth**2 + 1.0).pow(-self.exponent)

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Derivative]:
        base = d2.div_(self.bandwidth**2).add_(1.0)
        k = base.pow(-self.exponent)
        # f' = -e / s^2 * base^(-e-1) = -e / s^2 * k / base
        deriv = base.reciprocal_().mul_(k).mul_(-self.exponent / self.bandwidth**2)
        return k, deriv

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "exponent": self.exponent}


class LaplaceKernel(RadialKernel):
    """``k(x, y) = exp(-||x - y|| / sigma)``; the derivative at ``x = y`` is taken as 0."""

    name = "laplace"

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        if inplace:
            return d2.sqrt_().div_(-self.bandwidth).exp_()
        # under autograd sqrt is singular at 0 (the diagonal); the fused estimator avoids it
        return torch.exp(torch.sqrt(d2) / -self.bandwidth)

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Derivative]:
        r = d2.sqrt_()
        k = torch.exp(r / -self.bandwidth)
        # f'(d2) = -k / (2 sigma r); the gradient term multiplies (x - y), which is 0 when r = 0
        deriv = k / r.clamp_min(torch.finfo(r.dtype).tiny) / (-2.0 * self.bandwidth)
        return k, deriv.masked_fill_(r == 0, 0.0)


class MultiScaleGaussianKernel(RadialKernel):
    """Mean of Gaussians with bandwidths ``scale_s * sigma`` (the paper's toy kernel; the CPU demo uses it).

    The mean (rather than the sum) keeps ``k(x, x) = 1``, so the V-statistic offset and the
    floors keep the same meaning as for a single Gaussian.
    """

    name = "multiscale"

    def __init__(self, bandwidth: float, scales: Sequence[float] = (0.1, 0.2, 0.4, 0.8, 1.6)) -> None:
        super().__init__(bandwidth)
        scales = [float(s) for s in scales]
        if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise RecipeError(
                f"multiscale scales must be positive numbers, got {scales!r}.",
                "use e.g. scales: [0.1, 0.2, 0.4, 0.8, 1.6]",
            )
        self.scales = scales

    def _gammas(self) -> list[float]:
        return [1.0 / (2.0 * (s * self.bandwidth) ** 2) for s in self.scales]

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        out = sum(torch.exp(d2 * -g) for g in self._gammas())
        return out / len(self.scales)

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Derivative]:
        k = torch.zeros_like(d2)
        deriv = torch.zeros_like(d2)
        for g in self._gammas():
            e = torch.exp(d2 * -g)
            k.add_(e)
            deriv.add_(e, alpha=-g)
        n = len(self.scales)
        return k.div_(n), deriv.div_(n)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scales": list(self.scales)}


KERNELS: dict[str, type[RadialKernel]] = {
    "gaussian": GaussianKernel,
    "imq": IMQKernel,
    "laplace": LaplaceKernel,
    "multiscale": MultiScaleGaussianKernel,
}


def kernel_from_description(desc: dict[str, Any]) -> Any:
    """Rebuild a kernel from its ``describe()`` dict (reference headers).

    Built-in kernels are rebuilt directly; other names go through the ``kernels`` registry so
    third-party kernels round-trip too.
    """
    args = dict(desc)
    name = args.pop("name", None)
    if name in KERNELS:
        return KERNELS[name](**args)
    from rdm_core.plugins import registry

    return registry("kernels").create(str(name), **args)
