"""Self-normalisation, combination and the gated Lagrangian controller (SPEC 5.3, 5.5)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from rdm_core.errors import ArtifactError, NonFiniteError, RecipeError
from rdm_core.recipe.load import load_recipe
from rdm_mmd.balance import (
    GatedLagrangianController,
    StaticWeights,
    UniformWeights,
    balance_from_recipe,
    combine,
    self_normalize,
)
from rdm_mmd.floors import save_floors


def test_self_normalize_value_and_gradient():
    x = torch.tensor(0.02, dtype=torch.float64, requires_grad=True)
    y = self_normalize(x * 3)
    y.backward()
    assert y.item() == pytest.approx(0.06 / (0.06 + 1e-7))
    assert x.grad.item() == pytest.approx(3 / (0.06 + 1e-7))
    neg = torch.tensor(-0.5, requires_grad=True)
    self_normalize(neg).backward()
    assert neg.grad.item() == pytest.approx(1 / (0.5 + 1e-7))  # descent direction kept when L < 0


def test_combine_weights_each_normalised_term():
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(0.001, requires_grad=True)
    total = combine({"a": a, "b": b}, {"a": 0.5, "b": 2.0})
    total.backward()
    assert total.item() == pytest.approx(0.5 * 2 / (2 + 1e-7) + 2 * 0.001 / (0.001 + 1e-7))
    assert a.grad.item() == pytest.approx(0.5 / 2.0, rel=1e-6) and b.grad.item() == pytest.approx(
        2 / (0.001 + 1e-7), rel=1e-5
    )
    with pytest.raises(RecipeError, match="no weight"):
        combine({"a": a, "c": b}, {"a": 1.0})


def test_controller_scripted_sequence_by_hand():
    ctl = GatedLagrangianController(["a", "b", "c"], {"a": 0.1, "b": 0.2, "c": 0.3})
    assert ctl.weights() == {"a": 1.0, "b": 1.0, "c": 1.0}
    w = ctl.step({"a": 0.5, "b": 0.1, "c": 0.4})
    e = math.exp(-0.3 / 0.5)  # z = (0.4, -0.1, 0.1); T = 2 * mean(0.4, 0.1) = 0.5
    assert w["a"] == pytest.approx(3 / (1 + e)) and w["c"] == pytest.approx(3 * e / (1 + e)) and w["b"] == 0.0
    assert sum(w.values()) == pytest.approx(3.0)
    w = ctl.step({"a": 0.1, "b": 0.1, "c": 0.1})  # EMA: a 0.3, b 0.1, c 0.25 -> only a violates
    assert ctl.ema == pytest.approx({"a": 0.3, "b": 0.1, "c": 0.25})
    assert w == pytest.approx({"a": 3.0, "b": 0.0, "c": 0.0})
    ctl.step({"a": 0.0, "b": 0.0, "c": 0.0})  # a: 0.15 > 0.1 still
    w = ctl.step({"a": 0.0, "b": 0.0, "c": 0.0})  # a: 0.075 < 0.1 -> all satisfied -> all gated
    assert w == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_cost_clip_and_non_softmax_mode():
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.0, "b": 0.0}, softmax=False, lambda_max=3.0, kp=2.0)
    w = ctl.step({"a": 100.0, "b": 1.0})
    assert ctl.prev_error["a"] == 5.0  # clipped
    assert w == pytest.approx({"a": 3.0, "b": 2.0})
    w = ctl.step({"a": -100.0, "b": -1.0})
    assert w == {"a": 0.0, "b": 0.0}


def _spec_controller(names, floors, seq, kp, ki, kd, beta, temp, clip, lmax, softmax, normalized, total):
    """SPEC 5.5 written out independently, step by step."""
    ema, integ, prev, out = {}, {n: 0.0 for n in names}, {n: 0.0 for n in names}, []
    for scores in seq:
        z = {}
        for n in names:
            s = scores[n] if n not in ema else (1 - beta) * ema[n] + beta * scores[n]
            ema[n] = s
            err = (s - floors[n]) / floors[n] if normalized else s - floors[n]
            err = max(-clip, min(clip, err))
            integ[n] += err
            z[n] = kp * err + ki * integ[n] + kd * (err - prev[n])
            prev[n] = err
        if softmax:
            lam = {n: 0.0 for n in names}
            act = [n for n in names if z[n] > 0]
            if act:
                t = max(temp * sum(z[n] for n in act) / len(act), 1e-12)
                m = max(z[n] for n in act)
                den = sum(math.exp((z[n] - m) / t) for n in act)
                for n in act:
                    lam[n] = total * math.exp((z[n] - m) / t) / den
        else:
            lam = {n: max(0.0, min(lmax, z[n])) for n in names}
        out.append(lam)
    return out


@pytest.mark.parametrize(
    "softmax,normalized,ki,kd",
    [(True, False, 0.0, 0.0), (True, True, 0.1, 0.3), (False, False, 0.2, 0.5), (False, True, 0.0, 0.1)],
)
def test_controller_matches_spec_on_a_random_sequence(softmax, normalized, ki, kd):
    rng = random.Random(0)
    names = [f"e{i}" for i in range(5)]
    floors = {n: rng.uniform(0.01, 0.1) for n in names}
    seq = [{n: rng.uniform(-0.05, 0.3) for n in names} for _ in range(30)]
    args = dict(
        kp=1.3,
        ki=ki,
        kd=kd,
        ema_beta=0.4,
        temperature=2.0,
        cost_clip=2.0,
        lambda_max=4.0,
        softmax=softmax,
        normalized=normalized,
        total=7.0,
    )
    ctl = GatedLagrangianController(names, floors, **args)
    expected = _spec_controller(names, floors, seq, args["kp"], ki, kd, 0.4, 2.0, 2.0, 4.0, softmax, normalized, 7.0)
    for scores, want in zip(seq, expected, strict=True):
        got = ctl.step(scores)
        assert got == pytest.approx(want, abs=1e-12)
        if softmax and any(v > 0 for v in got.values()):
            assert sum(got.values()) == pytest.approx(7.0)


def test_state_dict_round_trip_through_json():
    names = ["a", "b", "c"]
    floors = {"a": 0.1, "b": 0.1, "c": 0.1}
    one = GatedLagrangianController(names, floors, ki=0.1, kd=0.2)
    two = GatedLagrangianController(names, floors, ki=0.1, kd=0.2)
    seq = [{"a": 0.3, "b": 0.05, "c": 0.2}, {"a": 0.2, "b": 0.3, "c": 0.1}, {"a": 0.1, "b": 0.2, "c": 0.4}]
    one.step(seq[0])
    state = json.loads(json.dumps(one.state_dict()))
    two.load_state_dict(state)
    assert two.weights() == one.weights()
    for s in seq[1:]:
        assert two.step(s) == one.step(s)
    fresh = GatedLagrangianController(names, floors)
    assert json.loads(json.dumps(fresh.state_dict()))["ema"] == [None, None, None]
    with pytest.raises(RecipeError, match="encoders"):
        GatedLagrangianController(["a", "b"], floors).load_state_dict(state)


def test_controller_errors():
    with pytest.raises(RecipeError, match="no floor"):
        GatedLagrangianController(["a", "b"], {"a": 0.1})
    ctl = GatedLagrangianController(["a"], {"a": 0.1})
    with pytest.raises(RecipeError, match="without score"):
        ctl.step({})
    with pytest.raises(NonFiniteError):
        ctl.step({"a": float("nan")})


def _recipe(tmp_path, **balance):
    lines = [
        "generator: {name: toy}",
        "encoders: {train: [a, b]}",
        f"references: {{dir: {tmp_path}}}",
        "train: {rollout: 64}",
        "balance:",
    ] + [f"  {k}: {json.dumps(v)}" for k, v in balance.items()]
    path = tmp_path / "r.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_recipe(str(path))


def test_balance_from_recipe_modes(tmp_path):
    assert isinstance(balance_from_recipe(_recipe(tmp_path, mode="uniform")), UniformWeights)
    static = balance_from_recipe(_recipe(tmp_path, mode="static", weights={"a": 2.0}))
    assert isinstance(static, StaticWeights) and static.weights() == {"a": 2.0, "b": 1.0}
    with pytest.raises(RecipeError):
        balance_from_recipe(_recipe(tmp_path, mode="static", weights={"zzz": 2.0}))
    save_floors(tmp_path / "floors.json", {"a": 0.1, "b": 0.2}, n=64)
    ctl = balance_from_recipe(_recipe(tmp_path, mode="controller", total=5.0, temperature=3.0))
    assert isinstance(ctl, GatedLagrangianController) and ctl.floors == {"a": 0.1, "b": 0.2}
    assert ctl.total == 5.0 and ctl.temperature == 3.0
    save_floors(tmp_path / "floors.json", {"a": 0.1, "b": 0.2}, n=128)
    with pytest.raises(ArtifactError, match="N=128"):
        balance_from_recipe(_recipe(tmp_path, mode="controller"))
    ctl = balance_from_recipe(_recipe(tmp_path, mode="controller"), floors={"a": 1.0, "b": 1.0})
    assert ctl.total == 2.0
    with pytest.raises(RecipeError, match="balance.mode"):
        balance_from_recipe(_recipe(tmp_path, mode="pid"))
