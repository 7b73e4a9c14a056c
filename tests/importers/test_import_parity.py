"""The parity options: the authors' first-rows rules, off by default, against brute-force float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdm_core.errors import RecipeError
from rdm_eval.rff import RffBank
from rdm_mmd.kernels import GaussianKernel
from rdm_mmd.nystrom import NystromReference
from rdm_testing.importers.authors_files import gauss


def _pool() -> torch.Tensor:
    # class-sorted like an ImageNet tree: the first rows are one cluster, the rest another
    gen = torch.Generator().manual_seed(0)
    return torch.cat([torch.randn(120, 4, generator=gen), torch.randn(120, 4, generator=gen) + 3.0])


def test_krr_over_the_first_rows_is_the_authors_constant():
    pool = _pool()
    ref = NystromReference.build(pool, GaussianKernel(bandwidth=2.0), landmarks=8, krr_subsample=100, krr_rows="first")
    first = pool[:100].double().numpy()
    assert ref.header["k_rr"] == pytest.approx(float(gauss(first, first, 2.0).mean()), rel=1e-6)
    assert ref.header["krr_rows"] == "first" and ref.header["krr_n"] == 100
    default = NystromReference.build(pool, GaussianKernel(bandwidth=2.0), landmarks=8, krr_subsample=100)
    assert default.header["krr_rows"] == "random"
    assert default.header["k_rr"] != pytest.approx(ref.header["k_rr"], rel=1e-3)
    with pytest.raises(RecipeError, match="krr_rows"):
        NystromReference.build(pool, GaussianKernel(bandwidth=2.0), landmarks=8, krr_rows="last")


def test_rff_mean_over_the_first_rows():
    pool = _pool()
    bank = RffBank.from_train(pool, features=64, mean_subsample=100, mean_rows="first", sigma=2.0)
    w, b = bank.rff.weight.double().numpy(), bank.rff.bias.double().numpy()
    phi = np.sqrt(2.0 / 64) * np.cos(pool[:100].double().numpy() @ w + b)
    np.testing.assert_allclose(bank.mu_r.numpy(), phi.mean(0), rtol=1e-5, atol=1e-7)
    assert bank.mean_rows == 100
