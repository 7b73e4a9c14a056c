"""Self-normalisation, combination and the gated Lagrangian controller (docs/method.md, "Combining encoders")."""

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
    assert y.item() == pytest.approx(0.06 / (0.06 + 1e-7), rel=1e-14)
    assert x.grad.item() == pytest.approx(3 / (0.06 + 1e-7), rel=1e-14)
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
    assert w["a"] == pytest.approx(3 / (1 + e), rel=1e-14) and w["c"] == pytest.approx(3 * e / (1 + e), rel=1e-14)
    assert w["b"] == 0.0
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


# -- the gate at its boundaries, hand-worked from the controller's definition -------------------
# Per encoder: s = raw on the first call, else (1 - beta) s_prev + beta raw (beta = 0.5);
# err = clip(s - b, -5, 5); integral += err; z = kp err + ki integral + kd (err - prev_err).
# Softmax mode: only encoders with z > 0 (violators) get weight; T = 2 * mean of the violators' z;
# lambda_e = total * exp((z_e - max z) / T) / sum over violators. Encoders at or below their floor
# (z <= 0) get exactly 0. Scores and floors below are dyadic, so s - b is exact.


def test_gate_below_at_and_above_the_floor():
    ctl = GatedLagrangianController(["below", "at", "above"], {"below": 0.25, "at": 0.25, "above": 0.25})
    # z = (-0.125, 0, 0.5): only "above" violates and takes the whole budget (3 encoders)
    assert ctl.step({"below": 0.125, "at": 0.25, "above": 0.75}) == {"below": 0.0, "at": 0.0, "above": 3.0}


def test_gate_at_the_floor_after_the_ema_and_in_normalized_mode():
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.5})
    e = math.exp((0.25 - 0.5) / 0.75)  # errors (0.25, 0.5), T = 2 * 0.375
    assert ctl.step({"a": 0.5, "b": 1.0}) == pytest.approx({"a": 2 * e / (1 + e), "b": 2 / (1 + e)}, rel=1e-15)
    # EMA: a = (0.5 + 0.0) / 2 = 0.25 (exactly its floor), b = (1.0 + 1.0) / 2 = 1.0 -> only b
    assert ctl.step({"a": 0.0, "b": 1.0}) == {"a": 0.0, "b": 2.0}
    norm = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.5}, normalized=True)
    # errors (s - b) / b: a (0.25 - 0.25) / 0.25 = 0 (gated), b (1.5 - 0.5) / 0.5 = 2
    assert norm.step({"a": 0.25, "b": 1.5}) == {"a": 0.0, "b": 2.0}


def test_two_violators_share_the_budget_by_a_softmax_of_relative_excess():
    ctl = GatedLagrangianController(["a", "b", "c"], {"a": 0.25, "b": 0.25, "c": 0.25})
    w = ctl.step({"a": 0.75, "b": 0.5, "c": 0.125})
    # z = (0.5, 0.25, -0.125); T = 2 * (0.5 + 0.25) / 2 = 0.75 (mean over violators only)
    e = math.exp((0.25 - 0.5) / 0.75)  # exp(-1/3) = 0.716531...
    assert w["a"] == pytest.approx(3 / (1 + e), rel=1e-15) and w["b"] == pytest.approx(3 * e / (1 + e), rel=1e-15)
    assert w["c"] == 0.0
    assert w["a"] == pytest.approx(1.7477106, abs=1e-7) and w["b"] == pytest.approx(1.2522894, abs=1e-7)


def test_all_satisfied_gates_every_encoder():
    ctl = GatedLagrangianController(["a", "b", "c"], {"a": 0.25, "b": 0.5, "c": 0.125}, ki=0.5, kd=0.25)
    assert ctl.weights() == {"a": 1.0, "b": 1.0, "c": 1.0}  # before the first step
    # errors (0, -0.25, -0.125), kd pushes z further down: nobody violates, nobody is weighted
    assert ctl.step({"a": 0.25, "b": 0.25, "c": 0.0}) == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_cost_clip_bounds_the_error_the_integral_and_the_softmax():
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.25}, ki=1.0)
    w = ctl.step({"a": 100.25, "b": 1.25})
    # err a = 100 clipped to 5, b = 1; z = err + integral = (10, 2); T = 2 * 6 = 12
    assert ctl.prev_error == {"a": 5.0, "b": 1.0} and ctl.integral == {"a": 5.0, "b": 1.0}
    e = math.exp(-8 / 12)
    assert w == pytest.approx({"a": 2 / (1 + e), "b": 2 * e / (1 + e)}, rel=1e-15)
    ctl.step({"a": -200.0, "b": 1.25})  # a: EMA (100.25 - 200) / 2 = -49.875 -> err clipped to -5
    assert ctl.prev_error["a"] == -5.0 and ctl.integral["a"] == 0.0
    edge = GatedLagrangianController(["a"], {"a": 0.25}, softmax=False)
    assert edge.step({"a": 5.25}) == {"a": 5.0}  # err exactly at the clip is kept


def test_non_softmax_lambda_is_z_clipped_to_zero_and_its_cap():
    ctl = GatedLagrangianController(
        ["low", "zero", "mid", "cap", "over"],
        {n: 0.25 for n in ("low", "zero", "mid", "cap", "over")},
        kp=2.0,
        softmax=False,
        lambda_max=3.0,
    )
    w = ctl.step({"low": 0.0, "zero": 0.25, "mid": 0.875, "cap": 1.75, "over": 4.25})
    # z = 2 * err = (-0.5, 0, 1.25, 3, 8): clip(z, 0, 3)
    assert w == {"low": 0.0, "zero": 0.0, "mid": 1.25, "cap": 3.0, "over": 3.0}


def test_state_after_a_resume_continues_the_same_sequence():
    args = dict(ki=0.5, kd=0.25)
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.5}, **args)
    assert ctl.step({"a": 0.75, "b": 0.25}) == {"a": 2.0, "b": 0.0}
    # step 1: err (0.5, -0.25); z_a = 0.5 + 0.5*0.5 + 0.25*0.5 = 0.875, z_b = -0.4375
    w = ctl.step({"a": 0.25, "b": 1.25})
    # step 2: s = (0.5, 0.75), err (0.25, 0.25), integral (0.75, 0), z = (0.5625, 0.375), T = 0.9375
    e = math.exp(-0.2)  # (0.375 - 0.5625) / 0.9375
    assert w == pytest.approx({"a": 2 / (1 + e), "b": 2 * e / (1 + e)}, rel=1e-15)
    saved = json.loads(json.dumps(ctl.state_dict()))
    assert saved == {
        "names": ["a", "b"],
        "ema": [0.5, 0.75],
        "integral": [0.75, 0.0],
        "prev_error": [0.25, 0.25],
        "lambdas": [pytest.approx(2 / (1 + e), rel=1e-15), pytest.approx(2 * e / (1 + e), rel=1e-15)],
        "steps": 2,
    }
    resumed = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.5}, **args)
    resumed.load_state_dict(saved)
    assert resumed.weights() == ctl.weights()  # the next step uses the saved lambdas
    w = resumed.step({"a": 0.5, "b": 1.25})
    # step 3: s = (0.5, 1.0), err (0.25, 0.5), integral (1.0, 0.5), z = (0.75, 0.8125), T = 1.5625
    e = math.exp(-0.04)  # (0.75 - 0.8125) / 1.5625
    assert w == pytest.approx({"a": 2 * e / (1 + e), "b": 2 / (1 + e)}, rel=1e-15)
    assert resumed.state_dict()["integral"] == [1.0, 0.5] and resumed.state_dict()["steps"] == 3


@pytest.mark.parametrize("normalized,ki,kd", [(False, 0.0, 0.0), (True, 0.1, 0.3), (False, 0.2, 0.5)])
def test_softmax_weights_keep_the_budget_and_the_order_of_violations(normalized, ki, kd):
    """Properties of any sequence: violators share exactly the budget, the larger z the larger
    share, everyone else gets 0 (z itself recomputed here from the logged errors)."""
    rng = random.Random(0)
    names = [f"e{i}" for i in range(5)]
    floors = {n: rng.uniform(0.01, 0.1) for n in names}
    ctl = GatedLagrangianController(names, floors, kp=1.3, ki=ki, kd=kd, normalized=normalized, total=7.0)
    integral, prev = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for _ in range(30):
        w = ctl.step({n: rng.uniform(-0.05, 0.3) for n in names})
        z = {}
        for n in names:
            err = ctl.prev_error[n]
            integral[n] += err
            z[n] = 1.3 * err + ki * integral[n] + kd * (err - prev[n])
            prev[n] = err
        violators = sorted((n for n in names if z[n] > 0), key=z.get)
        assert all(w[n] == 0.0 for n in names if n not in violators)
        if violators:
            assert sum(w.values()) == pytest.approx(7.0, rel=1e-12)
            assert [w[n] for n in violators] == sorted(w[n] for n in violators)


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
        "objective:",
        "  balance:",
    ] + [f"    {k}: {json.dumps(v)}" for k, v in balance.items()]
    path = tmp_path / "r.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_recipe(str(path))


def test_balance_from_recipe_modes(tmp_path):
    uniform = balance_from_recipe(_recipe(tmp_path, mode="uniform"))
    assert isinstance(uniform, UniformWeights) and uniform.weights() == {"a": 1.0, "b": 1.0}
    assert uniform.step({"a": 5.0, "b": 0.0}) == {"a": 1.0, "b": 1.0} and uniform.state_dict() == {}
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
    with pytest.raises(RecipeError, match="objective.balance.mode"):
        balance_from_recipe(_recipe(tmp_path, mode="pid"))


def test_balance_from_recipe_passes_every_controller_setting(tmp_path):
    settings = dict(kp=2.0, ki=0.25, kd=0.5, ema_beta=0.75, temperature=3.0, cost_clip=4.0, lambda_max=6.0)
    recipe = _recipe(tmp_path, mode="controller", softmax=False, normalized=True, total=7.0, **settings)
    ctl = balance_from_recipe(recipe, floors={"a": 0.5, "b": 0.25})
    got = {k: getattr(ctl, k) for k in settings}
    assert got == settings and ctl.softmax is False and ctl.normalized is True and ctl.total == 7.0
    # an explicit floors file wins over balance.floors and the default <references.dir>/floors.json
    save_floors(tmp_path / "floors.json", {"a": 0.1, "b": 0.2}, n=64)
    save_floors(tmp_path / "other.json", {"a": 0.3, "b": 0.4}, n=64)
    assert balance_from_recipe(recipe, floors=str(tmp_path / "other.json")).floors == {"a": 0.3, "b": 0.4}
    assert balance_from_recipe(recipe).floors == {"a": 0.1, "b": 0.2}
    assert balance_from_recipe(_recipe(tmp_path, mode="controller")).softmax is True


def test_controller_defaults():
    # kp 1, ki 0, kd 0, beta 0.5, T factor 2, cost clip 5, lambda_max 10, softmax, budget = #encoders
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.0, "b": 0.0})
    assert ctl.step({"a": 0.75, "b": 0.25}) == pytest.approx(
        {"a": 2 / (1 + math.exp(-0.5 / 1.0)), "b": 2 * math.exp(-0.5 / 1.0) / (1 + math.exp(-0.5 / 1.0))}, rel=1e-15
    )
    capped = GatedLagrangianController(["a"], {"a": 0.0}, kp=3.0, softmax=False)
    assert capped.step({"a": 100.0}) == {"a": 10.0}  # z = 3 * clip(100, 5) = 15 -> lambda_max 10


def test_normalized_errors_are_relative_to_each_floor():
    ctl = GatedLagrangianController(["a", "b"], {"a": 0.25, "b": 0.5}, normalized=True)
    # both scores are twice their floor: relative errors (1, 1) share the budget equally
    assert ctl.step({"a": 0.5, "b": 1.0}) == {"a": 1.0, "b": 1.0}
    with pytest.raises(RecipeError, match="floor is 0"):
        GatedLagrangianController(["a", "b"], {"a": 0.0, "b": 0.5}, normalized=True)
    GatedLagrangianController(["a", "b"], {"a": 1.0, "b": 0.5}, normalized=True)  # a floor of 1 is fine


@pytest.mark.parametrize("beta", [0.0, -0.5, 1.5])
def test_ema_beta_outside_0_1_is_refused(beta):
    with pytest.raises(RecipeError, match="ema_beta"):
        GatedLagrangianController(["a"], {"a": 0.1}, ema_beta=beta)


def test_ema_beta_of_one_follows_the_raw_score():
    ctl = GatedLagrangianController(["a"], {"a": 0.25}, ema_beta=1.0, softmax=False)
    ctl.step({"a": 1.25})
    assert ctl.step({"a": 0.5}) == {"a": 0.25} and ctl.ema == {"a": 0.5}


def test_combine_uses_its_eps():
    a = torch.tensor(0.5, dtype=torch.float64)
    assert combine({"a": a}, {"a": 1.0}, eps=0.5).item() == 0.5  # 0.5 / (0.5 + 0.5)


def test_loading_a_fresh_or_older_state():
    names, floors = ["a", "b"], {"a": 0.1, "b": 0.1}
    fresh = GatedLagrangianController(names, floors)
    state = json.loads(json.dumps(fresh.state_dict()))
    ctl = GatedLagrangianController(names, floors)
    ctl.step({"a": 0.3, "b": 0.3})
    ctl.load_state_dict(state)  # before the first step: no EMA yet
    assert ctl.ema == {"a": None, "b": None} and ctl.weights() == {"a": 1.0, "b": 1.0}
    del state["steps"]  # written before the step counter existed
    ctl.load_state_dict(state)
    assert ctl.steps == 0
    with pytest.raises(RecipeError, match="encoders"):
        ctl.load_state_dict({})
