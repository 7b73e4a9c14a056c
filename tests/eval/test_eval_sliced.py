"""SW_r14: exact against a brute-force float64 SW on the same directions; ~1 on a fresh real
draw; clearly above 1 when shifted; clear errors on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdm_core.errors import NonFiniteError, ShapeError
from rdm_eval.banks import EvalBank
from rdm_eval.metrics import SlicedWassersteinRatio
from rdm_eval.sliced import mean_ratio, projection_chunks, sliced_wasserstein, sliced_wasserstein_many
from rdm_testing.eval import brute


def brute_sw(x: np.ndarray, y: np.ndarray, thetas: np.ndarray, p: int = 2) -> float:
    """Per-direction loops in float64: sort both projections, average |diff|^p over N and L."""
    n = min(len(x), len(y))
    x, y = x[:n].astype(np.float64), y[:n].astype(np.float64)
    acc = 0.0
    for j in range(thetas.shape[1]):
        px, py = np.sort(x @ thetas[:, j]), np.sort(y @ thetas[:, j])
        acc += np.mean(np.abs(px - py) ** p)
    return (acc / thetas.shape[1]) ** (1.0 / p)


def test_projections_are_unit_seeded_and_chunked():
    chunks = list(projection_chunks(5, num_projections=150, chunk=64, seed=0))
    assert [c.shape[1] for c in chunks] == [64, 64, 22]
    theta = torch.cat(chunks, dim=1)
    assert torch.allclose(theta.norm(dim=0), torch.ones(150), atol=1e-6)
    # One generator seeded 0 drawn chunk by chunk: the same stream as a manual draw.
    g = torch.Generator().manual_seed(0)
    first = torch.randn(5, 64, generator=g)
    assert torch.allclose(chunks[0], first / first.norm(dim=0, keepdim=True))
    again = torch.cat(list(projection_chunks(5, num_projections=150, chunk=64, seed=0)), dim=1)
    assert torch.equal(theta, again)


def test_sw_matches_bruteforce_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 7, generator=g) * 1.3 + 0.2
    y = torch.randn(257, 7, generator=g)
    thetas = torch.cat(list(projection_chunks(7, num_projections=200, chunk=64, seed=0)), dim=1).double().numpy()
    expected = brute_sw(x.numpy(), y.numpy(), thetas)
    got = sliced_wasserstein(x, y, num_projections=200, chunk=64, seed=0)
    assert got == pytest.approx(expected, rel=1e-7)  # float32 path, measured: 6e-10
    got64 = sliced_wasserstein(x, y, num_projections=200, chunk=64, seed=0, dtype=torch.float64)
    assert got64 == pytest.approx(expected, rel=1e-13)
    # p = 1 through the same path
    assert sliced_wasserstein(x, y, num_projections=200, p=1, dtype=torch.float64) == pytest.approx(
        brute_sw(x.numpy(), y.numpy(), thetas, p=1), rel=1e-13
    )


def test_shared_directions_and_common_n():
    g = torch.Generator().manual_seed(2)
    train, gen, val = (
        torch.randn(500, 4, generator=g),
        torch.randn(400, 4, generator=g),
        torch.randn(450, 4, generator=g),
    )
    both, n = sliced_wasserstein_many({"gen": gen, "val": val}, train, num_projections=128, dtype=torch.float64)
    assert n == 400
    thetas = torch.cat(list(projection_chunks(4, num_projections=128)), dim=1).double().numpy()
    assert both["gen"] == pytest.approx(brute_sw(gen.numpy(), train[:400].numpy(), thetas), rel=1e-13)
    assert both["val"] == pytest.approx(brute_sw(val[:400].numpy(), train[:400].numpy(), thetas), rel=1e-13)
    assert sliced_wasserstein(train, train) == 0.0


def _banks(d: int, n: int, seed: int) -> dict[str, EvalBank]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"e{k}": EvalBank(f"e{k}", torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)) for k in range(3)
    }


def test_ratio_near_one_for_fresh_draw_and_above_for_shift():
    banks = _banks(16, 2048, 3)
    g = torch.Generator().manual_seed(4)
    fresh = {k: torch.randn(2048, 16, generator=g) for k in banks}
    shifted = {k: torch.randn(2048, 16, generator=g) + 0.5 for k in banks}
    metric = SlicedWassersteinRatio()
    real = metric.evaluate(generated=fresh, banks=banks, held_out=["e2"])
    assert 0.7 < real.value < 1.4
    assert all(0.6 < v < 1.6 for v in real.per_item.values())
    fake = metric.evaluate(generated=shifted, banks=banks, held_out=["e2"])
    assert fake.value > 3.0
    assert fake.extra["held_out"] == ["e2"]
    assert fake.extra["mean_held_out"] == pytest.approx(fake.per_item["e2"])
    assert fake.extra["mean_train"] == pytest.approx((fake.per_item["e0"] + fake.per_item["e1"]) / 2)
    assert fake.value == pytest.approx(sum(fake.per_item.values()) / 3)


def distinct_banks(seed: int, d: int = 6) -> tuple[dict[str, EvalBank], dict[str, torch.Tensor]]:
    """Train, val and generated features from three different distributions, of three sizes."""
    g = torch.Generator().manual_seed(seed)
    banks, generated = {}, {}
    for k in range(3):
        train = torch.randn(700, d, generator=g)
        val = torch.randn(600, d, generator=g) * 0.8 + 0.3 * (k + 1)
        banks[f"e{k}"] = EvalBank(f"e{k}", train, val)
        generated[f"e{k}"] = torch.randn(500, d, generator=g) * 1.4 - 0.2
    return banks, generated


def test_ratio_is_gen_to_train_over_val_to_train_with_distinct_banks():
    """With train != val, swapping their roles (or dividing by SW(gen, val)) changes every ratio."""
    banks, generated = distinct_banks(8)
    res = SlicedWassersteinRatio().evaluate(generated=generated, banks=banks, held_out=["e2"])
    want = {e: brute.sw_ratio(generated[e], b.val, b.train) for e, b in banks.items()}
    # measured: within 1e-9 relative of the float64 definition
    assert res.per_item == pytest.approx(want, rel=1e-7)
    assert res.value == pytest.approx(sum(want.values()) / 3, rel=1e-7)
    assert res.extra["mean_train"] == pytest.approx((want["e0"] + want["e1"]) / 2, rel=1e-7)
    for e, b in banks.items():
        assert res.extra["details"][e]["n"] == 500  # all three sets cut to the smallest
        swapped = brute.sw_ratio(generated[e], b.train, b.val)
        assert abs(swapped - want[e]) > 0.1 * want[e]  # the fixture tells the roles apart


def test_arithmetic_mean_drops_nan():
    assert mean_ratio({"a": 1.0, "b": float("nan"), "c": 3.0}) == 2.0
    assert math.isnan(mean_ratio({"a": float("nan")}))


def test_degenerate_val_gives_nan_dropped():
    bank = EvalBank("e", torch.ones(64, 3), torch.ones(64, 3))  # val == train -> SW(val, train) = 0
    other = _banks(3, 64, 5)["e0"]
    res = SlicedWassersteinRatio(num_projections=64).evaluate(
        generated={"e": torch.zeros(64, 3), "o": torch.randn(64, 3)}, banks={"e": bank, "o": other}
    )
    assert math.isnan(res.per_item["e"])
    assert res.extra["dropped"] == ["e"]
    assert res.value == pytest.approx(res.per_item["o"])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match="common dimension"):
        sliced_wasserstein(torch.randn(10, 3), torch.randn(10, 4))
    bad = torch.randn(10, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        sliced_wasserstein(bad, torch.randn(10, 3))
    with pytest.raises(ShapeError, match="at least 2"):
        sliced_wasserstein(torch.randn(1, 3), torch.randn(10, 3))


def test_metric_settings_reach_the_directions_and_every_detail_is_reported():
    """A non-default seed, chunk and N cap change the directions and the sets; the ratio, and the
    SW values a report reads, are the definition's on exactly those directions and rows."""
    banks, generated = distinct_banks(12, d=5)
    res = SlicedWassersteinRatio(num_projections=96, chunk=16, seed=5, n=300).evaluate(generated=generated, banks=banks)
    assert res.name == "sw_r14"
    thetas = brute.directions(5, 96, chunk=16, seed=5)
    for e, b in banks.items():
        g, v, t = (x[:300].double().numpy() for x in (generated[e], b.val, b.train))
        sw_gen, sw_val = brute.sliced_w(g, t, thetas), brute.sliced_w(v, t, thetas)
        d = res.extra["details"][e]
        # measured: within 1e-8 relative of the float64 definition (float32 projections)
        assert d["sw_gen"] == pytest.approx(sw_gen, rel=1e-6) and d["sw_val"] == pytest.approx(sw_val, rel=1e-6)
        assert d["ratio"] == res.per_item[e] == pytest.approx(sw_gen / sw_val, rel=1e-6) and d["n"] == 300
    assert (res.extra["num_projections"], res.extra["chunk"], res.extra["seed"], res.extra["p"]) == (96, 16, 5, 2)
    broken = dict(generated, e1=generated["e1"].clone())
    broken["e1"][3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="sw_r14/e1"):  # the message names the metric and the encoder
        SlicedWassersteinRatio(num_projections=16).evaluate(generated=broken, banks=banks)
