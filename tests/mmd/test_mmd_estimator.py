"""Repulsion, cross-kernel means and k_rr against brute-force float64, both code paths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdm_core.errors import RecipeError, ShapeError
from rdm_mmd.estimator import cross_kernel_mean, kernel_mean_constant, mmd_loss, repulsion
from rdm_mmd.kernels import GaussianKernel, IMQKernel, LaplaceKernel, MultiScaleGaussianKernel
from rdm_testing.mmd.mmd_brute import kernel_matrix

KERNELS = {
    "gaussian": (GaussianKernel, {}),
    "imq": (IMQKernel, {"exponent": 0.5}),
    "laplace": (LaplaceKernel, {}),
    "multiscale": (MultiScaleGaussianKernel, {"scales": (0.5, 1.0, 2.0)}),
}


class GramOnlyKernel:
    """A third-party style kernel with only gram(): exercises the checkpoint path."""

    name = "gram_only_gaussian"

    def __init__(self, bandwidth: float) -> None:
        self.bandwidth = bandwidth

    def gram(self, x, y):
        return torch.exp(-torch.cdist(x, y).pow(2) / (2 * self.bandwidth**2))

    def describe(self):
        return {"name": self.name, "bandwidth": self.bandwidth}


def _rand(shape, seed, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 6),
    chunk=st.integers(1, 50),
    sigma=st.floats(0.5, 4.0),
    seed=st.integers(0, 10_000),
    name=st.sampled_from(sorted(KERNELS)),
    method=st.sampled_from(["fused", "checkpoint"]),
)
def test_repulsion_value_and_gradient_match_brute_force(n, d, chunk, sigma, seed, name, method):
    cls, args = KERNELS[name]
    x = _rand((n, d), seed, 1.5).requires_grad_()
    value = repulsion(x, cls(sigma, **args), gen_chunk=chunk, method=method)
    (grad,) = torch.autograd.grad(value, x)
    xb = x.detach().clone().requires_grad_()
    expected = kernel_matrix(name, xb, xb, sigma, **args).mean()
    (grad_b,) = torch.autograd.grad(expected, xb)
    assert value.dtype == torch.float64
    if name == "laplace" and method == "checkpoint":
        # gram() sees the expansion's round-off on the diagonal, and sqrt amplifies it
        assert torch.allclose(value, expected, atol=1e-6)
        return  # autograd through sqrt at the diagonal's round-off is not a meaningful gradient
    assert torch.allclose(value, expected, atol=1e-13, rtol=1e-13)  # measured: 2e-16
    assert torch.allclose(grad, grad_b, atol=1e-13, rtol=1e-12)


def test_repulsion_chunk_invariant_and_at_least_one_over_n():
    x = _rand((300, 8), 0, 3.0)
    k = GaussianKernel(1.0)
    a = repulsion(x, k, gen_chunk=37)
    b = repulsion(x, k, gen_chunk=10000)
    c = repulsion(x, k, gen_chunk=37, method="checkpoint")
    assert abs(a.item() - b.item()) < 1e-10 and abs(a.item() - c.item()) < 1e-10
    assert a.item() >= 1.0 / 300
    # well-separated points: the diagonal dominates, k_gg -> 1/N from above
    far = torch.arange(50, dtype=torch.float64)[:, None] * 100.0
    assert repulsion(far, k).item() == pytest.approx(1 / 50, abs=1e-15)


def test_repulsion_memory_budget_caps_the_block_and_keeps_the_value():
    x = _rand((64, 5), 1)
    k = GaussianKernel(2.0)
    small = repulsion(x, k, memory_budget=64 * 8 * 3 * 3)  # three rows per block
    assert abs(small.item() - repulsion(x, k).item()) < 1e-12


def test_repulsion_fp32_for_low_precision_inputs():
    x = torch.randn(20, 4).to(torch.bfloat16).requires_grad_()
    v = repulsion(x, GaussianKernel(1.0))
    assert v.dtype == torch.float32
    v.backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


def test_gram_only_kernel_uses_checkpoint_path():
    x = _rand((30, 4), 2).requires_grad_()
    k = GramOnlyKernel(1.2)
    v = repulsion(x, k, gen_chunk=7)
    (g,) = torch.autograd.grad(v, x)
    xb = x.detach().clone().requires_grad_()
    e = kernel_matrix("gaussian", xb, xb, 1.2).mean()
    (gb,) = torch.autograd.grad(e, xb)
    assert torch.allclose(v, e, atol=1e-14, rtol=0) and torch.allclose(g, gb, atol=1e-14, rtol=0)  # measured: 1e-16
    with pytest.raises(
        RecipeError,
        match=r"^kernel 'gram_only_gaussian' has no radial profile \(profile\(\), profile_with_derivative\(\)\).*checkpoint",
    ):
        repulsion(x, k, method="fused")
    with pytest.raises(RecipeError):
        repulsion(x, GaussianKernel(1.0), method="bogus")


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 30),
    m=st.integers(1, 30),
    d=st.integers(1, 5),
    budget_rows=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    name=st.sampled_from(sorted(KERNELS)),
    weighted=st.booleans(),
    method=st.sampled_from(["fused", "checkpoint"]),
)
def test_cross_kernel_mean_matches_brute_force(n, m, d, budget_rows, seed, name, weighted, method):
    cls, args = KERNELS[name]
    x = _rand((n, d), seed).requires_grad_()
    y = _rand((m, d), seed + 1)
    w = _rand((m,), seed + 2) if weighted else None
    k = cls(1.7, **args)
    value = cross_kernel_mean(x, y, k, w, memory_budget=budget_rows * m * 8 * 3, method=method)
    (grad,) = torch.autograd.grad(value, x)
    xb = x.detach().clone().requires_grad_()
    km = kernel_matrix(name, xb, y, 1.7, **args)
    expected = (km @ w).mean() if weighted else km.mean()
    (grad_b,) = torch.autograd.grad(expected, xb)
    assert torch.allclose(value, expected, atol=1e-13, rtol=0)  # measured: 2e-16
    assert torch.allclose(grad, grad_b, atol=1e-13, rtol=0)


def test_cross_kernel_mean_errors():
    k = GaussianKernel(1.0)
    with pytest.raises(ShapeError, match="dim"):
        cross_kernel_mean(torch.randn(3, 4), torch.randn(5, 3), k)
    with pytest.raises(ShapeError, match="weight"):
        cross_kernel_mean(torch.randn(3, 4), torch.randn(5, 4), k, torch.ones(4))
    with pytest.raises(ShapeError):
        repulsion(torch.randn(4), k)


def test_mmd_loss_and_gradient_match_brute_force():
    g = _rand((40, 6), 5).requires_grad_()
    r = _rand((55, 6), 6) + 0.5
    k = GaussianKernel(2.0)
    k_rr = kernel_matrix("gaussian", r, r, 2.0).mean().item()
    loss = mmd_loss(g, r, None, k, k_rr, gen_chunk=9, memory_budget=7 * 55 * 8 * 3)
    (grad,) = torch.autograd.grad(loss, g)
    gb = g.detach().clone().requires_grad_()
    expected = kernel_matrix("gaussian", gb, gb, 2.0).mean() - 2 * kernel_matrix("gaussian", gb, r, 2.0).mean() + k_rr
    (grad_b,) = torch.autograd.grad(expected, gb)
    assert torch.allclose(loss, expected, atol=1e-14, rtol=0)  # measured: 6e-17
    assert torch.allclose(grad, grad_b, atol=1e-14, rtol=0)
    assert loss.item() > 0


def test_kernel_mean_constant_is_a_seeded_random_subsample():
    pool = _rand((500, 4), 7)
    pool[:250] += 5.0  # sorted pool: the first rows are not representative
    k = GaussianKernel(1.5)
    value, idx = kernel_mean_constant(pool, k, subsample=120, seed=3, block=37)
    sub = pool[idx]
    assert idx.shape == (120,) and len(set(idx.tolist())) == 120
    assert abs(value - kernel_matrix("gaussian", sub, sub, 1.5).mean().item()) < 1e-12
    again, idx2 = kernel_mean_constant(pool, k, subsample=120, seed=3, block=500)
    assert torch.equal(idx, idx2) and abs(again - value) < 1e-12
    first = kernel_matrix("gaussian", pool[:120], pool[:120], 1.5).mean().item()
    assert abs(first - value) > 1e-3
    full, _ = kernel_mean_constant(pool, k, subsample=10_000, seed=0, block=64)
    assert abs(full - kernel_matrix("gaussian", pool, pool, 1.5).mean().item()) < 1e-12


@pytest.mark.parametrize("method", ["fused", "checkpoint"])
def test_autocast_regions_do_not_lower_the_loss_precision(method):
    g = torch.randn(64, 32) * 3
    z = torch.randn(40, 32) * 3
    w = torch.rand(40)
    k = GaussianKernel(8.0)
    gd, zd, wd = g.double(), z.double(), w.double()
    want = kernel_matrix("gaussian", gd, gd, 8.0).mean() - 2 * (kernel_matrix("gaussian", gd, zd, 8.0) @ wd).mean()
    want = want.item() + 0.1
    plain = mmd_loss(g, z, w, k, 0.1, method=method)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = mmd_loss(g, z, w, k, 0.1, method=method)
    # fp32 math is within ~1e-7 of the float64 value; bf16 matmuls inside would be ~1e-3 off
    for value in (plain, inside):
        assert value.dtype == torch.float32 and value.item() == pytest.approx(want, abs=1e-5)


def test_rows_for_budget():
    from rdm_mmd.estimator import DEFAULT_MEMORY_BUDGET, rows_for_budget

    # a (rows, cols) block costs cols * itemsize bytes per row, three buffers of it
    assert rows_for_budget(10, 8, 10 * 8 * 3 * 7) == 7
    assert rows_for_budget(10, 8, 10 * 8 * 3 * 7 + 239) == 7
    assert rows_for_budget(10, 8, 100) == 1  # at least one row, however small the budget
    assert rows_for_budget(10, 8, None) == DEFAULT_MEMORY_BUDGET // 240
    assert rows_for_budget(10, 8, 10 * 8 * 3 * 7, cap=5) == 5 and rows_for_budget(10, 8, 100, cap=5) == 1
    assert rows_for_budget(10, 8, 10 * 8 * 3 * 7, cap=0) == 1


def test_empty_inputs_are_named():
    with pytest.raises(ShapeError, match="generated features must be a non-empty"):
        repulsion(torch.zeros(0, 3), GaussianKernel(1.0))
    with pytest.raises(ShapeError, match="generated features must be a non-empty"):
        cross_kernel_mean(torch.zeros(0, 3), torch.ones(2, 3), GaussianKernel(1.0))
    with pytest.raises(ShapeError, match="reference rows must be a non-empty"):
        cross_kernel_mean(torch.ones(2, 3), torch.zeros(0, 3), GaussianKernel(1.0))


def test_auto_takes_the_fused_path_for_radial_kernels_only_when_the_reference_is_frozen(gram_calls):
    x, y, w = _rand((20, 3), 1).requires_grad_(), _rand((9, 3), 2), _rand((9,), 3)
    k = GaussianKernel(1.5)
    repulsion(x, k).backward()
    cross_kernel_mean(x, y, k, w).backward()
    assert gram_calls == []  # both fused
    # y (or w) needing a gradient: the fused pass gives none, so the checkpoint path must run
    x.grad = None
    yg, wg = y.clone().requires_grad_(), w.clone().requires_grad_()
    value = cross_kernel_mean(x, yg, k, wg)
    value.backward()
    assert gram_calls
    xb, yb, wb = (t.detach().clone().requires_grad_() for t in (x, y, w))
    want = (kernel_matrix("gaussian", xb, yb, 1.5) @ wb).mean()
    want.backward()
    assert torch.allclose(value, want, atol=1e-14, rtol=0)
    for got, ref in ((x.grad, xb.grad), (yg.grad, yb.grad), (wg.grad, wb.grad)):
        assert got is not None and torch.allclose(got, ref, atol=1e-14, rtol=0)


def test_repulsion_blocks_follow_memory_budget_and_gen_chunk(gram_calls):
    x = _rand((30, 3), 4)
    k = GaussianKernel(1.5)
    want = kernel_matrix("gaussian", x, x, 1.5).mean().item()
    # rows 30 wide x 8 bytes x 3 buffers: a budget of 2 rows; gen_chunk caps it further
    for budget, gen_chunk, rows in ((30 * 8 * 3 * 2, 8192, 2), (1 << 20, 7, 7), (30 * 8 * 3 * 5, 3, 3)):
        gram_calls.clear()
        value = repulsion(x, k, gen_chunk=gen_chunk, memory_budget=budget, method="checkpoint").item()
        assert value == pytest.approx(want, rel=1e-14) and max(r for r, _ in gram_calls) == rows


@pytest.mark.parametrize("method", ["fused", "checkpoint"])
def test_cross_mean_without_gradients_in_many_blocks(method):
    x, y, w = _rand((23, 4), 5), _rand((11, 4), 6), _rand((11,), 7)
    want = (kernel_matrix("gaussian", x, y, 1.3) @ w).mean().item()
    with torch.no_grad():
        got = cross_kernel_mean(x, y, GaussianKernel(1.3), w, memory_budget=11 * 8 * 3 * 4, method=method)
    assert got.item() == pytest.approx(want, rel=1e-13)


def test_reference_and_weights_are_cast_to_the_computation_dtype():
    x, y, w = _rand((12, 3), 8), _rand((7, 3), 9).float(), _rand((7,), 10).float()
    k = GaussianKernel(1.1)
    for method in ("fused", "checkpoint"):
        got = cross_kernel_mean(x, y, k, w, method=method)
        assert got.dtype == torch.float64
        assert got.item() == cross_kernel_mean(x, y.double(), k, w.double(), method=method).item()
    low = x.to(torch.bfloat16)
    got = cross_kernel_mean(low, y, k, w)  # bf16 encoder outputs are computed in fp32
    assert got.dtype == torch.float32 and got.item() == cross_kernel_mean(low.float(), y, k, w).item()


def test_autocast_does_not_lower_the_gradient_precision():
    g = (torch.randn(64, 32) * 3).requires_grad_()
    z, w = torch.randn(40, 32) * 3, torch.rand(40)
    k = GaussianKernel(8.0)
    (plain,) = torch.autograd.grad(mmd_loss(g, z, w, k, 0.1), g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = mmd_loss(g, z, w, k, 0.1)
    (grad,) = torch.autograd.grad(inside, g)
    assert grad.dtype == torch.float32 and torch.allclose(grad, plain, atol=1e-9, rtol=1e-6)
