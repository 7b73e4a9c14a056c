"""The MMD estimator pieces: exact biased repulsion, weighted cross-kernel means, k_rr (docs/method.md).

Two code paths compute the same numbers:

* **fused** (radial kernels, the default): a custom autograd function walks row blocks once,
  accumulating the value *and* the exact gradient from the kernel's profile derivative. Nothing
  of size ``(N, N)`` or ``(N, M)`` outlives a block, backward is an ``O(N d)`` scaling, and the
  repulsion visits only the upper triangle (each off-diagonal block serves rows and columns).
* **checkpoint** (any kernel with ``gram``): row chunks under
  ``torch.utils.checkpoint(use_reentrant=False)`` so autograd keeps ``O(chunk x N)``; the
  generic path for third-party kernels and the reference the fused path is tested against.

Features in fp64 stay fp64 (tests); anything else is computed in fp32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from rdm_core.capabilities import RadialKernel
from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import Kernel
from rdm_core.numerics import sq_dists

DEFAULT_GEN_CHUNK = 8192
DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes of block scratch per call
_BLOCK_BUFFERS = 3  # distance/kernel block + derivative block + elementwise temporaries


def full_precision(x: Tensor) -> torch.autocast:
    """Disable autocast around loss math: a trainer may call the loss inside a bf16 region,
    but kernels, sums and gradients must stay fp32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def compute_dtype(x: Tensor) -> torch.dtype:
    """fp64 stays fp64; everything else (bf16 encoder outputs, fp32) is computed in fp32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rows_for_budget(cols: int, itemsize: int, memory_budget: int | None, cap: int | None = None) -> int:
    """How many rows of a ``(rows, cols)`` block fit ``memory_budget`` bytes of scratch."""
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    rows = max(1, budget // max(1, cols * itemsize * _BLOCK_BUFFERS))
    return rows if cap is None else max(1, min(rows, int(cap)))


def _is_fused(kernel: Any) -> bool:
    return isinstance(kernel, RadialKernel)


def _check_2d(x: Tensor, what: str) -> None:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ShapeError(
            f"{what} must be a non-empty (N, dim) matrix, got shape {tuple(x.shape)}.",
            "pass pooled features, one row per sample",
        )


def _method(kernel: Any, method: str) -> str:
    if method == "auto":
        return "fused" if _is_fused(kernel) else "checkpoint"
    if method not in ("fused", "checkpoint"):
        raise RecipeError(f"unknown estimator method {method!r}.", "use 'auto', 'fused' or 'checkpoint'")
    if method == "fused" and not _is_fused(kernel):
        raise RecipeError(
            f"kernel {kernel.name if isinstance(kernel, Kernel) else kernel!r} has no radial profile "
            "(profile(), profile_with_derivative()); the fused path needs one.",
            "use method='checkpoint' (works with any gram())",
        )
    return method


# -- repulsion k_gg ---------------------------------------------------------------------------


class _FusedRepulsion(torch.autograd.Function):
    """``(1/N^2) sum_{i,i'} k(x_i, x_i')`` with its gradient accumulated in the same pass.

    d/dx_i = (4/N^2) sum_j f'_ij (x_i - x_j), with ``f'`` the profile derivative.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, kernel: Any, chunk: int) -> Tensor:  # type: ignore[override]
        n = x.shape[0]
        need_grad = bool(ctx.needs_input_grad[0])
        sq = x.pow(2).sum(1)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        rowsum = torch.zeros(n, dtype=x.dtype, device=x.device) if need_grad else None
        fx = torch.zeros_like(x) if need_grad else None
        scalar_deriv = 1.0
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            c = hi - lo
            # Upper trapezoid: rows [lo, hi) x columns [lo, n). The leading c x c block is the
            # (symmetric) diagonal block; the rest stands for itself and its transpose.
            d2 = sq_dists(x[lo:hi], x[lo:], sq[lo:hi], sq[lo:])
            # self-pairs are exactly 0 apart; the expansion leaves round-off there, which a
            # kernel singular at 0 (Laplace: sqrt) would amplify
            d2[:, :c].diagonal().zero_()
            if need_grad:
                k, deriv = kernel.profile_with_derivative(d2)
            else:
                k, deriv = kernel.profile(d2, inplace=True), None
            total += 2.0 * k.sum().double() - k[:, :c].sum().double()
            if need_grad:
                if isinstance(deriv, float):
                    f, scalar_deriv = k, deriv
                else:
                    f = deriv
                del k
                fx[lo:hi].addmm_(f, x[lo:])
                rowsum[lo:hi] += f.sum(1)
                if hi < n:
                    off = f[:, c:]
                    fx[hi:].addmm_(off.T, x[lo:hi])
                    rowsum[hi:] += off.sum(0)
            del d2
        inv = 1.0 / (n * n)
        if need_grad:
            grad = rowsum[:, None] * x
            grad.sub_(fx).mul_(4.0 * inv * scalar_deriv)
            ctx.save_for_backward(grad)
        return (total * inv).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None


def _sym_block_sum(rows: Tensor, cols: Tensor, kernel: Any, c: int) -> Tensor:
    k = kernel.gram(rows, cols)
    return 2.0 * k.sum() - k[:, :c].sum()


def _checkpoint_repulsion(x: Tensor, kernel: Any, chunk: int) -> Tensor:
    n = x.shape[0]
    total = x.new_zeros(())
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        if torch.is_grad_enabled() and x.requires_grad:
            total = total + checkpoint(_sym_block_sum, x[lo:hi], x[lo:], kernel, hi - lo, use_reentrant=False)
        else:
            total = total + _sym_block_sum(x[lo:hi], x[lo:], kernel, hi - lo)
    return total / (n * n)


def repulsion(
    features: Tensor,
    kernel: Any,
    *,
    gen_chunk: int = DEFAULT_GEN_CHUNK,
    memory_budget: int | None = None,
    method: str = "auto",
) -> Tensor:
    """Exact biased within-batch kernel mean ``k_gg`` (diagonal included, divided by N^2).

    Args:
        features: ``(N, d)`` generated features of the GLOBAL batch (gradient flows to them).
        kernel: a kernel; radial kernels use the fused path.
        gen_chunk: maximum rows per block (the recipe's ``objective.distance.gen_chunk``).
        memory_budget: bytes of block scratch; caps the rows per block (default 512 MiB).
        method: ``auto`` | ``fused`` | ``checkpoint``.

    Returns:
        A scalar tensor, ``>= 1/N`` for a positive-definite kernel with ``k(x, x) = 1``.
    """
    _check_2d(features, "generated features")
    x = features.to(compute_dtype(features))
    n = x.shape[0]
    chunk = rows_for_budget(n, x.element_size(), memory_budget, cap=gen_chunk)
    with full_precision(x):
        if _method(kernel, method) == "fused":
            return _FusedRepulsion.apply(x, kernel, chunk)
        return _checkpoint_repulsion(x, kernel, chunk)


# -- weighted cross-kernel mean (attraction) --------------------------------------------------


class _FusedCrossMean(torch.autograd.Function):
    """``(1/N) sum_i sum_m w_m k(x_i, y_m)`` with the gradient for ``x`` accumulated in the pass.

    d/dx_i = (2/N) sum_m w_m f'_im (x_i - y_m).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, w: Tensor, kernel: Any, chunk: int) -> Tensor:  # type: ignore[override]
        n = x.shape[0]
        need_grad = bool(ctx.needs_input_grad[0])
        x_sq, y_sq = x.pow(2).sum(1), y.pow(2).sum(1)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        grad = torch.empty_like(x) if need_grad else None
        # (f * w) @ y == f @ (w * y): scale the small side once instead of every block
        wy = y * w[:, None] if need_grad else None
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            d2 = sq_dists(x[lo:hi], y, x_sq[lo:hi], y_sq)
            if not need_grad:
                total += (kernel.profile(d2, inplace=True) @ w).sum().double()
                continue
            k, deriv = kernel.profile_with_derivative(d2)
            kw = k @ w
            total += kw.sum().double()
            if isinstance(deriv, float):
                f, rs, s = k, kw, deriv
            else:
                f, s = deriv, 1.0
                rs = f @ w
            g = grad[lo:hi]
            torch.mul(x[lo:hi], rs[:, None], out=g)
            g.sub_(f @ wy).mul_(2.0 * s / n)
            del k, f, d2
        if need_grad:
            ctx.save_for_backward(grad)
        return (total / n).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None


def _cross_block(rows: Tensor, y: Tensor, w: Tensor, kernel: Any) -> Tensor:
    return (kernel.gram(rows, y) @ w).sum()


def cross_kernel_mean(
    x: Tensor,
    y: Tensor,
    kernel: Any,
    weights: Tensor | None = None,
    *,
    memory_budget: int | None = None,
    method: str = "auto",
) -> Tensor:
    """``mean_i sum_m w_m k(x_i, y_m)``; uniform ``w = 1/len(y)`` gives the plain cross mean.

    Nystrom attraction is ``cross_kernel_mean(g, Z, kernel, alpha)``; the exact estimator's
    is ``cross_kernel_mean(g, real_sample, kernel)``. Rows of ``x`` are processed in blocks sized
    to ``memory_budget``; the gradient flows to ``x`` only (``y`` and ``w`` are frozen data).
    """
    _check_2d(x, "generated features")
    _check_2d(y, "reference rows")
    if x.shape[1] != y.shape[1]:
        raise ShapeError(
            f"generated features have dim {x.shape[1]} but the reference has dim {y.shape[1]}.",
            "use the reference built for this encoder (`rdm reference build RECIPE --encoders NAME`)",
        )
    dtype = compute_dtype(x)
    xx = x.to(dtype)
    yy = y.to(device=xx.device, dtype=dtype)
    if weights is None:
        ww = torch.full((yy.shape[0],), 1.0 / yy.shape[0], dtype=dtype, device=xx.device)
    else:
        ww = weights.to(device=xx.device, dtype=dtype)
        if ww.shape != (yy.shape[0],):
            raise ShapeError(
                f"weights have shape {tuple(ww.shape)}, expected ({yy.shape[0]},).", "pass one weight per reference row"
            )
    chunk = rows_for_budget(yy.shape[0], xx.element_size(), memory_budget)
    frozen = not (yy.requires_grad or ww.requires_grad)
    with full_precision(xx):
        if _method(kernel, method) == "fused" and frozen:
            return _FusedCrossMean.apply(xx, yy, ww, kernel, chunk)
        total = xx.new_zeros(())
        for lo in range(0, xx.shape[0], chunk):
            hi = min(lo + chunk, xx.shape[0])
            if torch.is_grad_enabled() and (xx.requires_grad or not frozen):
                total = total + checkpoint(_cross_block, xx[lo:hi], yy, ww, kernel, use_reentrant=False)
            else:
                total = total + _cross_block(xx[lo:hi], yy, ww, kernel)
        return total / xx.shape[0]


# -- constants --------------------------------------------------------------------------------


@torch.no_grad()
def kernel_mean_constant(
    pool: Tensor, kernel: Any, *, subsample: int = 100000, seed: int = 0, block: int = 4096, rows: str = "random"
) -> tuple[float, Tensor]:
    """``k_rr = (1/n^2) sum_{j,j'} k(r_j, r_j')`` over a seeded random subsample (no gradient).

    Computed blockwise over the upper triangle (``block x block`` tiles), accumulated in fp64.
    ``rows="first"`` takes the pool's first ``subsample`` rows instead: the authors' rule, kept
    for reproducing their bundles (with class-sorted pools it sees only the first classes).

    Returns:
        ``(k_rr, indices)``: the constant and the subsample row indices used.
    """
    _check_2d(pool, "reference pool")
    n = pool.shape[0]
    if rows not in ("random", "first"):
        raise ValueError(f"rows must be 'random' or 'first', got {rows!r}")
    gen = torch.Generator().manual_seed(int(seed))
    take = min(int(subsample), n)
    idx = torch.arange(take) if rows == "first" else torch.randperm(n, generator=gen)[:take]
    r = pool.index_select(0, idx.to(pool.device)).to(compute_dtype(pool))
    m = r.shape[0]
    sq = r.pow(2).sum(1)
    fused = _is_fused(kernel)
    total = 0.0
    for lo in range(0, m, block):
        hi = min(lo + block, m)
        for clo in range(lo, m, block):
            chi = min(clo + block, m)
            if fused:  # reuse the norms and transform the block in place
                d2 = sq_dists(r[lo:hi], r[clo:chi], sq[lo:hi], sq[clo:chi])
                if clo == lo:
                    d2.diagonal().zero_()  # exact self-distances (see the repulsion)
                tile = kernel.profile(d2, inplace=True)
            else:
                tile = kernel.gram(r[lo:hi], r[clo:chi])
            s = tile.sum().item()
            total += s if clo == lo else 2.0 * s  # off-diagonal tiles stand for their transpose too
    return total / (m * m), idx


def mmd_loss(
    features: Tensor,
    landmarks: Tensor,
    weights: Tensor | None,
    kernel: Any,
    k_rr: float,
    *,
    gen_chunk: int = DEFAULT_GEN_CHUNK,
    memory_budget: int | None = None,
    method: str = "auto",
) -> Tensor:
    """``L = k_gg - 2 * mean_i sum_m w_m k(g_i, y_m) + k_rr``, a raw scalar."""
    k_gg = repulsion(features, kernel, gen_chunk=gen_chunk, memory_budget=memory_budget, method=method)
    k_gr = cross_kernel_mean(features, landmarks, kernel, weights, memory_budget=memory_budget, method=method)
    return k_gg - 2.0 * k_gr + k_rr
