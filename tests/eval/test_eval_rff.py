"""MMD_r14: the RFF map, the seeded median bandwidth and mu_r, against float64 brute force;
a fresh real draw scores ~1 and a shifted one clearly above."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdm_core.errors import ShapeError
from rdm_eval.banks import EvalBank
from rdm_eval.metrics import RffMmdRatio
from rdm_eval.rff import RandomFourierFeatures, RffBank, median_bandwidth, mmd_rff_ratios, mmd_score
from rdm_testing.eval import brute


def test_draw_is_seeded_device_free_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = RandomFourierFeatures.draw(5, 2.0, features=256, seed=99999)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = RandomFourierFeatures.draw(5, 2.0, features=256, seed=99999)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    g = torch.Generator().manual_seed(99999)
    assert torch.allclose(a.weight, torch.randn(5, 256, generator=g) / 2.0)
    assert torch.allclose(a.bias, torch.rand(256, generator=g) * 2 * math.pi)
    assert float(a.bias.min()) >= 0 and float(a.bias.max()) < 2 * math.pi


def test_mean_embedding_and_score_match_float64_bruteforce():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(333, 6, generator=g)
    mu = torch.randn(512, generator=g).double() * 0.01
    rff = RandomFourierFeatures.draw(6, 1.7, features=512, seed=7)
    w, b = rff.weight.double().numpy(), rff.bias.double().numpy()
    phi = np.sqrt(2.0 / 512) * np.cos(x.double().numpy() @ w + b)
    expected_mean = phi.mean(axis=0)
    got = rff.mean_embedding(x, chunk=100)  # chunking must not change the result
    assert np.allclose(got.numpy(), expected_mean, atol=1e-6)
    assert mmd_score(got, mu) == pytest.approx(1000 * np.sum((expected_mean - mu.numpy()) ** 2), rel=1e-7)


def test_rff_approximates_the_gaussian_kernel():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g)
    sigma = 2.0
    rff = RandomFourierFeatures.draw(4, sigma, features=4096, seed=99999)
    phi = lambda t: math.sqrt(2 / 4096) * torch.cos(t @ rff.weight + rff.bias)
    approx = phi(x) @ phi(y).T
    exact = torch.exp(-(torch.cdist(x.double(), y.double()) ** 2) / (2 * sigma**2))
    assert (approx.double() - exact).abs().max() < 0.08


def test_median_bandwidth_matches_bruteforce_on_the_seeded_subsample():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 5, generator=g) * 3
    sub = x[torch.randperm(300, generator=torch.Generator().manual_seed(11))[:120]].double().numpy()
    d2 = ((sub[:, None, :] - sub[None, :, :]) ** 2).sum(-1)
    # the rule every rdm bandwidth follows: sqrt of the (usual) median squared pairwise distance
    expected = np.sqrt(np.median(d2[np.triu_indices(len(sub), k=1)]))
    assert median_bandwidth(x, subsample=120, seed=11) == pytest.approx(expected, rel=1e-9)
    assert median_bandwidth(x, subsample=120, seed=11) == median_bandwidth(x, subsample=120, seed=11)


def test_mu_r_uses_a_seeded_random_subsample_not_first_rows():
    # A class-sorted train bank: first rows are all cluster A, the rest cluster B.
    g = torch.Generator().manual_seed(3)
    train = torch.cat([torch.randn(2000, 3, generator=g) - 2, torch.randn(2000, 3, generator=g) + 2])
    bank = RffBank.from_train(train, features=1024, mean_subsample=1000, seed=99999)
    full = bank.rff.mean_embedding(train)
    first_rows = bank.rff.mean_embedding(train[:1000])
    assert bank.mean_rows == 1000
    assert mmd_score(bank.mu_r, full) < 0.1 * mmd_score(first_rows, full)


def _banks(n: int, d: int, seed: int) -> dict[str, EvalBank]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"e{k}": EvalBank(f"e{k}", torch.randn(3 * n, d, generator=g), torch.randn(n, d, generator=g)) for k in range(3)
    }


def test_real_draw_near_one_and_shift_above():
    banks = _banks(2048, 8, 4)
    g = torch.Generator().manual_seed(5)
    metric = RffMmdRatio(features=4096, sigma_subsample=1024)
    real = metric.evaluate(
        generated={k: torch.randn(2048, 8, generator=g) for k in banks}, banks=banks, held_out=["e2"]
    )
    assert 0.5 < real.value < 1.8
    fake = metric.evaluate(generated={k: torch.randn(2048, 8, generator=g) + 0.5 for k in banks}, banks=banks)
    assert fake.value > 5.0
    d = fake.extra["details"]["e0"]
    assert d["ratio"] == pytest.approx(d["m_gen"] / d["m_val"])
    assert d["n"] == 2048 and d["mean_rows"] == 3 * 2048


def test_ratio_is_m_gen_over_m_val_around_train_with_distinct_banks():
    """Train, val and generated from three different distributions: the train bank alone defines
    the map and mu_r, gen and val share N; swapping train and val changes every ratio."""
    g = torch.Generator().manual_seed(9)
    banks, generated = {}, {}
    for k in range(2):
        banks[f"e{k}"] = EvalBank(
            f"e{k}", torch.randn(700, 5, generator=g), torch.randn(600, 5, generator=g) * 0.8 + 0.3 * (k + 1)
        )
        generated[f"e{k}"] = torch.randn(500, 5, generator=g) * 1.4 - 0.2
    res = RffMmdRatio(features=1024, sigma_subsample=400, mean_subsample=300).evaluate(generated=generated, banks=banks)
    for e, b in banks.items():
        want = brute.mmd_ratio(generated[e], b.val, b.train, features=1024, sigma_subsample=400, mean_subsample=300)
        # measured: within 1e-8 relative of the float64 definition
        assert res.per_item[e] == pytest.approx(want, rel=1e-6)
        assert res.extra["details"][e]["n"] == 500 and res.extra["details"][e]["mean_rows"] == 300
        swapped = brute.mmd_ratio(generated[e], b.train, b.val, features=1024, sigma_subsample=400, mean_subsample=300)
        assert abs(swapped - want) > 0.1 * want
    assert res.value == pytest.approx(sum(res.per_item.values()) / 2)


def test_gen_and_val_share_n_and_dims_are_checked():
    g = torch.Generator().manual_seed(6)
    train, val = torch.randn(600, 3, generator=g), torch.randn(300, 3, generator=g)
    out = mmd_rff_ratios(torch.randn(500, 3, generator=g), val, train, features=256)
    assert out["n"] == 300
    with pytest.raises(ShapeError, match="train bank has dim 3"):
        mmd_rff_ratios(torch.randn(50, 4), val, train, features=256)


def _phi_mean(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """mean_i sqrt(2/D) cos(x_i W + b) in float64 numpy."""
    wd, bd = w.double().numpy(), b.double().numpy()
    return math.sqrt(2.0 / wd.shape[1]) * np.cos(x.double().numpy() @ wd + bd).mean(axis=0)


def test_a_stored_map_replaces_the_draw_and_never_ignores_it():
    g = torch.Generator().manual_seed(21)
    train, val, gen = torch.randn(400, 4, generator=g), torch.randn(300, 4, generator=g) + 0.2, torch.randn(350, 4)
    w, b = torch.randn(4, 256, generator=g) / 1.3, torch.rand(256, generator=g) * 2 * math.pi
    mu_r = torch.from_numpy(_phi_mean(train[:50], w, b))
    bank = EvalBank("e", train, val, meta={"rff": {"sigma": 1.3, "mean_n": 50}}, rff={"W": w, "b": b, "mu_r": mu_r})
    res = RffMmdRatio(features=256).evaluate(generated={"e": gen}, banks={"e": bank})
    m_gen = 1000 * np.sum((_phi_mean(gen[:300], w, b) - mu_r.numpy()) ** 2)
    m_val = 1000 * np.sum((_phi_mean(val, w, b) - mu_r.numpy()) ** 2)
    d = res.extra["details"]["e"]
    assert d["m_gen"] == pytest.approx(m_gen, rel=1e-5) and d["m_val"] == pytest.approx(m_val, rel=1e-5)
    assert (d["rff_map"], d["sigma"], d["mean_rows"], d["n"]) == ("stored", 1.3, 50, 300)
    assert res.per_item["e"] == pytest.approx(m_gen / m_val, rel=1e-5)
    # a stored map without its row count says so (-1) instead of guessing
    bank.meta = {"rff": {"sigma": 1.3}}
    assert (
        RffMmdRatio(features=256).evaluate(generated={"e": gen}, banks={"e": bank}).extra["details"]["e"]["mean_rows"]
        == -1
    )
    drawn = RffMmdRatio(features=256, sigma_subsample=200, stored="never", seed=123)
    res = drawn.evaluate(generated={"e": gen}, banks={"e": bank})
    assert res.extra["details"]["e"]["rff_map"] == "drawn" and res.extra["seed"] == 123
    want = brute.mmd_ratio(gen, val, train, features=256, seed=123, sigma_subsample=200)
    assert res.per_item["e"] == pytest.approx(want, rel=1e-6)


def test_first_rows_rule_and_a_val_bank_equal_to_mu_rs_rows():
    g = torch.Generator().manual_seed(22)
    train = torch.randn(500, 3, generator=g)
    bank = RffBank.from_train(train, features=128, mean_subsample=200, mean_rows="first", sigma=2.5)
    assert bank.mean_rows == 200 and bank.rff.sigma == 2.5
    assert torch.allclose(bank.rff.weight, torch.randn(3, 128, generator=torch.Generator().manual_seed(99999)) / 2.5)
    assert np.allclose(bank.mu_r.numpy(), _phi_mean(train[:200], bank.rff.weight, bank.rff.bias), atol=1e-7)
    # val made of exactly the rows mu_r averages: m_val = 0, and the ratio is NaN, not an error
    out = mmd_rff_ratios(torch.randn(300, 3), train[:200], train, features=128, mean_subsample=200, mean_rows="first")
    assert out["m_val"] == 0.0 and math.isnan(out["ratio"])
    assert mmd_rff_ratios(train[:100], train[100:200], train, features=128, sigma=0.75)["sigma"] == 0.75


def test_mean_embedding_is_float32_phi_summed_in_float64():
    g = torch.Generator().manual_seed(23)
    x = torch.randn(3000, 6, generator=g, dtype=torch.float64) * 4
    rff = RandomFourierFeatures.draw(6, 0.9, features=64, seed=1)
    got = rff.mean_embedding(x, chunk=1000)
    assert got.dtype == torch.float64
    assert torch.equal(got, rff.mean_embedding(x.float(), chunk=1000))  # float64 inputs are cast to float32
    # phi in float32 (the documented precision), the sums over rows in float64
    phi = torch.cat([torch.cos(x[i : i + 1000].float() @ rff.weight + rff.bias) for i in range(0, 3000, 1000)])
    want = phi.double().sum(0) * math.sqrt(2.0 / 64) / 3000
    assert torch.allclose(got, want, rtol=0, atol=1e-15)


def test_the_draw_does_not_follow_the_default_dtype():
    before = RandomFourierFeatures.draw(3, 1.0, features=32, seed=4)
    torch.set_default_dtype(torch.float64)
    try:
        after = RandomFourierFeatures.draw(3, 1.0, features=32, seed=4)
    finally:
        torch.set_default_dtype(torch.float32)
    assert after.weight.dtype == torch.float32 and torch.equal(after.weight, before.weight)
