"""Exact, RFF, Frechet and sliced-Wasserstein references against brute-force float64."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdm_core.errors import RecipeError
from rdm_core.plugins import registry
from rdm_core.recipe.assemble import load_reference
from rdm_mmd.exact import ExactReference
from rdm_mmd.frechet import FrechetReference
from rdm_mmd.kernels import GaussianKernel
from rdm_mmd.rff import RFFReference
from rdm_mmd.sliced import SlicedWassersteinReference
from rdm_mmd.stepped_reference import step_generator
from rdm_testing.mmd.mmd_brute import kernel_matrix


def _pool(n=300, d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.randn(d, d, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["nystrom", "exact", "rff", "frechet", "sliced_wasserstein"])
def test_every_kind_builds_through_the_one_call_with_the_shared_header(kind):
    cls = registry("references").resolve(kind)
    pool = _pool(64, 3)
    ref = cls.build(pool, "gaussian", landmarks=8, seed=1, encoder="enc", bandwidth_scale=0.5, bandwidth_subsample=50)
    h = ref.header
    assert (h["kind"], h["encoder"], h["dim"], h["n"], h["seed"]) == (kind, "enc", 3, 64, 1)
    if cls.uses_kernel:  # a kernel name becomes that kernel at the seeded median bandwidth x scale
        d2 = ((pool[:, None] - pool[None]) ** 2).sum(-1).numpy()
        take = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:50].numpy()
        sub = d2[np.ix_(take, take)][np.triu_indices(50, k=1)]
        assert h["bandwidth"] == pytest.approx(0.5 * math.sqrt(np.median(sub)), rel=1e-12)
        assert h["kernel"]["name"] == "gaussian" and h["bandwidth_scale"] == 0.5
    else:
        assert h["kernel"] is None and h["bandwidth"] is None and h["bandwidth_scale"] is None
    assert h["landmarks"] == (8 if kind == "nystrom" else None)
    with pytest.raises(RecipeError, match=f"{kind} reference has no option.*typo_option"):
        cls.build(pool, typo_option=1)


def test_all_kinds_are_registered():
    reg = registry("references")
    assert {"nystrom", "exact", "rff", "frechet", "sliced_wasserstein"} <= set(reg.names())
    assert reg.resolve("sliced_wasserstein") is SlicedWassersteinReference


def test_exact_uses_a_fresh_seeded_subsample_per_step():
    pool = _pool()
    ref = ExactReference.build(pool, GaussianKernel(3.0), seed=4, sample_size=40)
    g = (torch.randn(25, 5, dtype=torch.float64)).requires_grad_()
    ref.set_step(7)
    loss = ref.distance(g)
    (grad,) = torch.autograd.grad(loss, g)
    idx = torch.randperm(300, generator=step_generator(4, 7))[:40]
    real = pool.float()[idx].double()
    gb = g.detach().clone().requires_grad_()
    expected = (
        kernel_matrix("gaussian", gb, gb, 3.0).mean()
        - 2 * kernel_matrix("gaussian", gb, real, 3.0).mean()
        + ref.header["k_rr"]
    )
    (grad_b,) = torch.autograd.grad(expected, gb)
    assert torch.allclose(loss, expected, atol=1e-14, rtol=0) and torch.allclose(grad, grad_b, atol=1e-14, rtol=0)
    assert ref.step == 8  # the counter advanced
    second = ref.distance(g.detach())
    assert second.item() != loss.item()
    # another "rank" with the same step draws the same rows
    twin = ExactReference.build(pool, GaussianKernel(3.0), seed=4, sample_size=40)
    twin.set_step(7)
    assert twin.distance(g.detach()).item() == loss.item()


def test_exact_defaults_to_batch_size_and_round_trips(tmp_path: Path):
    ref = ExactReference.build(_pool(), "gaussian", seed=0, encoder="e")
    ref.save(tmp_path / "x.safetensors")
    loaded = load_reference(tmp_path / "x.safetensors", expect={"kind": "exact", "encoder": "e"})
    g = torch.randn(30, 5)
    assert torch.equal(loaded.distance(g), ref.distance(g))


def test_rff_matches_brute_force_and_approximates_the_kernel():
    pool = _pool(400, 4)
    ref = RFFReference.build(pool, GaussianKernel(4.0), seed=99999, num_features=2048, memory_budget=1 << 16)
    w, b, mu = ref.tensors["W"].double(), ref.tensors["b"].double(), ref.tensors["mu_r"].double()
    gen = torch.Generator().manual_seed(99999)
    w0 = torch.randn(4, 2048, generator=gen, dtype=torch.float64) / 4.0
    assert torch.allclose(w, w0.float().double())
    phi = lambda x: math.sqrt(2 / 2048) * torch.cos(x @ w + b)
    assert torch.allclose(mu, phi(pool).mean(0), atol=1e-6)
    g = (torch.randn(50, 4, dtype=torch.float64) * 3).requires_grad_()
    loss = ref.distance(g)
    (grad,) = torch.autograd.grad(loss, g)
    gb = g.detach().clone().requires_grad_()
    expected = (phi(gb).mean(0) - mu).pow(2).sum()
    (grad_b,) = torch.autograd.grad(expected, gb)
    assert torch.allclose(loss, expected, atol=1e-14, rtol=0) and torch.allclose(grad, grad_b, atol=1e-14, rtol=0)
    exact = (
        kernel_matrix("gaussian", g.detach(), g.detach(), 4.0).mean()
        - 2 * kernel_matrix("gaussian", g.detach(), pool, 4.0).mean()
        + kernel_matrix("gaussian", pool, pool, 4.0).mean()
    )
    assert loss.item() == pytest.approx(exact.item(), abs=0.03)


def test_rff_mean_subsample_is_random_and_kernel_checked():
    pool = _pool(400, 4)
    ref = RFFReference.build(pool, GaussianKernel(4.0), seed=1, num_features=64, mean_subsample=100)
    assert ref.header["mean_n"] == 100
    with pytest.raises(RecipeError, match="Gaussian"):
        RFFReference.build(pool, "laplace")


def _fd_brute(g: np.ndarray, r: np.ndarray, eps: float) -> float:
    mu_g, mu_r = g.mean(0), r.mean(0)
    s_g = np.atleast_2d(np.cov(g, rowvar=False)) + eps * np.eye(g.shape[1])
    s_r = np.atleast_2d(np.cov(r, rowvar=False))
    covmean = scipy.linalg.sqrtm(s_g @ (s_r + eps * np.eye(g.shape[1])))
    return float(((mu_g - mu_r) ** 2).sum() + np.trace(s_g) + np.trace(s_r) - 2 * np.trace(covmean).real)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(8, 60), d=st.integers(1, 6), seed=st.integers(0, 1000))
def test_frechet_matches_brute_force(n, d, seed):
    pool = _pool(200, d, seed)
    g = _pool(n, d, seed + 1) + 0.5
    ref = FrechetReference.build(pool)
    value = ref.distance(g).item()
    assert value == pytest.approx(_fd_brute(g.numpy(), pool.numpy(), 1e-6), rel=1e-10, abs=1e-10)  # measured: 3e-13


def test_frechet_zero_at_the_reference_fit_and_has_gradient():
    pool = _pool(500, 4)
    ref = FrechetReference.build(pool)
    assert abs(ref.distance(pool).item()) < 1e-5
    g = _pool(64, 4, 3).requires_grad_()
    value = ref.distance(g)
    (grad,) = torch.autograd.grad(value, g)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert ref.header["tr_sigma_r"] == pytest.approx(float(np.trace(np.cov(pool.numpy(), rowvar=False))), rel=1e-12)


def test_sliced_wasserstein_matches_brute_force():
    pool = _pool(200, 5)
    ref = SlicedWassersteinReference.build(pool, projections=100, p=2.0, chunk=16, seed=2)
    g = (torch.randn(40, 5, dtype=torch.float64) * 2).requires_grad_()
    ref.set_step(3)
    value = ref.distance(g)
    (grad,) = torch.autograd.grad(value, g)
    gen = step_generator(2, 3)
    real = pool.float()[torch.randperm(200, generator=gen)[:40]].double()
    # directions: float32 N(0, I) chunks of `chunk` columns from the same step generator, normalised
    theta = torch.cat([torch.randn(5, 16, generator=gen) for _ in range(6)] + [torch.randn(5, 4, generator=gen)], 1)
    theta = (theta / theta.norm(dim=0, keepdim=True)).double()
    gb = g.detach().clone().requires_grad_()
    per_dir = []
    for j in range(100):
        a = torch.sort(gb @ theta[:, j]).values
        b = torch.sort(real @ theta[:, j]).values
        per_dir.append(((a - b) ** 2).mean())
    expected = torch.stack(per_dir).mean()
    (grad_b,) = torch.autograd.grad(expected, gb)
    assert torch.allclose(value, expected, atol=1e-13, rtol=0) and torch.allclose(grad, grad_b, atol=1e-13, rtol=0)


def test_sliced_wasserstein_zero_on_itself_and_fresh_directions():
    pool = _pool(64, 3)
    ref = SlicedWassersteinReference.build(pool, projections=32)
    # a pool of exactly N rows: the real sample is the pool (in another order)
    assert ref.distance(pool).item() == pytest.approx(0.0, abs=1e-13)  # measured: 2e-15
    g = torch.randn(64, 3, dtype=torch.float64)
    assert ref.distance(g).item() != ref.distance(g).item()  # new step, new directions and sample
    with pytest.raises(RecipeError):
        SlicedWassersteinReference.build(pool, projections=0)
