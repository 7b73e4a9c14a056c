"""The tuning prototype's numerics against brute-force float64, and a short real run."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rdm_toy.prototype import (
    NystromRef,
    PrototypeConfig,
    gaussian,
    median_bandwidth,
    projections,
    run,
    sliced_w2,
    sw_ratio,
)


def _rows(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def _brute_k(a, b, s):
    return [
        [math.exp(-sum((x - y) ** 2 for x, y in zip(r, q, strict=True)) / (2 * s * s)) for q in b.tolist()]
        for r in a.tolist()
    ]


def test_gaussian_gram_matches_brute_force():
    a, b = _rows(5, 3, 0), _rows(4, 3, 1)
    assert torch.allclose(gaussian(a, b, 0.8), torch.tensor(_brute_k(a, b, 0.8), dtype=torch.float64), atol=1e-12)


def test_median_bandwidth_matches_brute_force():
    x = _rows(30, 4, 2)
    pairs = sorted(float(((x[i] - x[j]) ** 2).sum()) for i, j in itertools.combinations(range(30), 2))
    med = (
        torch.tensor(pairs, dtype=torch.float64).median().item()
    )  # torch's median of an even count is the lower middle
    assert abs(median_bandwidth(x, scale=0.5, subsample=30) - 0.5 * math.sqrt(med)) < 1e-9


def test_nystrom_with_all_points_as_landmarks_is_the_exact_mmd():
    r, g = _rows(40, 3, 3), _rows(25, 3, 4, shift=0.5)
    ref = NystromRef.build(r.float(), sigma=1.5, landmarks=40, jitter=1e-9)
    kgg = torch.tensor(_brute_k(g, g, 1.5)).mean()
    kgr = torch.tensor(_brute_k(g, r, 1.5)).mean()
    krr = torch.tensor(_brute_k(r, r, 1.5)).mean()
    exact = (kgg - 2 * kgr + krr).item()
    assert abs(ref.k_rr - krr.item()) < 1e-6
    assert abs(ref.attraction(g.float()).item() - kgr.item()) < 2e-4
    assert abs(ref.loss(g.float()).item() - exact) < 5e-4
    same = NystromRef.build(r.float(), sigma=1.5, landmarks=40, jitter=1e-9)
    assert ref.loss(r.float()).item() < 1e-3 and torch.equal(ref.alpha, same.alpha)


def test_sliced_w2_matches_brute_force_and_ratio_of_val_is_one():
    x, y = _rows(12, 3, 5), _rows(12, 3, 6, shift=1.0)
    theta = projections(3, count=7, seed=0)
    total = 0.0
    for j in range(7):
        px = sorted((x @ theta[:, j]).tolist())
        py = sorted((y @ theta[:, j]).tolist())
        total += sum((a - b) ** 2 for a, b in zip(px, py, strict=True)) / 12
    assert abs(sliced_w2(x, y, theta) - math.sqrt(total / 7)) < 1e-12
    assert torch.allclose(theta.norm(dim=0), torch.ones(7, dtype=torch.float64))
    assert sw_ratio(y, x, y) == pytest.approx(1.0)


def test_short_full_batch_run_lowers_the_loss_and_the_sw_ratio(tmp_path):
    cfg = PrototypeConfig(
        steps=12,
        rollout=256,
        lr=1e-2,
        landmarks=64,
        eval_samples=300,
        train_encoders=["digits_ae", "digits_pixels"],
        held_out=["digits_pca"],
    )
    res = run(cfg, out_dir=str(tmp_path), log=lambda *_: None)
    first, last = res["history"][0], res["history"][-1]
    for name in cfg.train_encoders:
        assert last[name] < 0.7 * first[name]
    assert res["held_out_sw_after"] < res["held_out_sw_before"]
    assert res["held_out_sw_before"] >= 5  # the untrained generator is far from the data
    assert (tmp_path / "prototype.json").exists() and (tmp_path / "prototype.png").stat().st_size > 1000


@pytest.mark.slow
def test_tuned_prototype_reaches_held_out_sw_ratio_1_3(tmp_path):
    from rdm_toy.prototype import TUNED

    res = run(TUNED, out_dir=str(tmp_path), log=lambda *_: None)
    assert res["held_out_sw_after"] <= 1.3
    assert min(res["class_histogram"]) >= 0.05
