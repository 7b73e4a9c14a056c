"""Combining per-encoder losses: self-normalisation and weights (docs/method.md).

``L_total = sum_e lambda_e * L_e / (|stopgrad(L_e)| + eps)``. The weights come from one of three
balancers with the same small interface (``weights()``, ``step(raw_scores)``, ``state_dict()``,
``load_state_dict()``): uniform, static, or the gated proportional Lagrangian controller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rdm_core.errors import NonFiniteError, RecipeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


def self_normalize(raw: Tensor, eps: float = 1e-7) -> Tensor:
    """``L / (|L.detach()| + eps)``: value ~ sign(L), gradient ``grad L / |L|`` (scale-free)."""
    return raw / (raw.detach().abs() + eps)


def combine(raw: Mapping[str, Tensor], weights: Mapping[str, float], eps: float = 1e-7) -> Tensor:
    """``sum_e weights[e] * self_normalize(raw[e])``.

    Raises:
        RecipeError: an encoder in ``raw`` without a weight.
    """
    if not raw:
        raise RecipeError("no per-encoder losses to combine.", "list at least one encoder under encoders.train")
    missing = [k for k in raw if k not in weights]
    if missing:
        raise RecipeError(
            f"no weight for encoder(s) {', '.join(missing)}.",
            "give every training encoder a weight (objective.balance.weights) or use objective.balance.mode: uniform",
        )
    total = None
    for name, value in raw.items():
        term = self_normalize(value, eps) * float(weights[name])
        total = term if total is None else total + term
    return total


class UniformWeights:
    """Every encoder weighs 1.0, always (the Table 3 control arm; FLUX recipes)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)

    def weights(self) -> dict[str, float]:
        return {n: 1.0 for n in self.names}

    def step(self, raw_scores: Mapping[str, float]) -> dict[str, float]:
        return self.weights()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


class StaticWeights(UniformWeights):
    """Fixed per-encoder weights (missing names default to 1.0)."""

    def __init__(self, names: Iterable[str], weights: Mapping[str, float]) -> None:
        super().__init__(names)
        unknown = [k for k in weights if k not in self.names]
        if unknown:
            raise RecipeError(
                f"objective.balance.weights names encoder(s) {', '.join(unknown)} that are not training encoders.",
                f"use names from encoders.train: {', '.join(self.names)}",
            )
        self._weights = {n: float(weights.get(n, 1.0)) for n in self.names}

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


class GatedLagrangianController:
    """Gated proportional Lagrangian controller (docs/method.md).

    Call :meth:`step` after each optimizer step with the raw per-encoder ``L_e`` of the global
    batch; the returned weights apply to the next step. Initial weights are 1.0.

    Args:
        names: training encoders.
        floors: ``b_e`` per encoder (computed at the training N).
        kp, ki, kd: PID gains on the (clipped) error.
        ema_beta: weight of the new score in the EMA (0.5).
        temperature: softmax temperature factor (T = temperature * mean violation).
        cost_clip: errors are clipped to ``[-cost_clip, cost_clip]``.
        lambda_max: cap in non-softmax mode.
        softmax: gated softmax over violators (True) or ``clip(z, 0, lambda_max)``.
        normalized: error ``(s - b) / b`` instead of ``s - b``.
        total: budget shared by violators (default: number of encoders).
    """

    def __init__(
        self,
        names: Iterable[str],
        floors: Mapping[str, float],
        *,
        kp: float = 1.0,
        ki: float = 0.0,
        kd: float = 0.0,
        ema_beta: float = 0.5,
        temperature: float = 2.0,
        cost_clip: float = 5.0,
        lambda_max: float = 10.0,
        softmax: bool = True,
        normalized: bool = False,
        total: float | None = None,
    ) -> None:
        self.names = list(names)
        if not self.names:
            raise RecipeError("the controller needs at least one encoder.", "list encoders under encoders.train")
        missing = [n for n in self.names if n not in floors]
        if missing:
            raise RecipeError(
                f"no floor for encoder(s) {', '.join(missing)}.",
                "compute floors with `rdm reference build RECIPE --split val` (floors.json)",
            )
        self.floors = {n: float(floors[n]) for n in self.names}
        if normalized and any(b == 0 for b in self.floors.values()):
            raise RecipeError(
                "normalized errors divide by the floor, and a floor is 0.", "set objective.balance.normalized: false"
            )
        if not 0 < ema_beta <= 1:
            raise RecipeError(f"ema_beta must be in (0, 1], got {ema_beta}.", "use objective.balance.ema_beta: 0.5")
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.ema_beta, self.temperature, self.cost_clip = float(ema_beta), float(temperature), float(cost_clip)
        self.lambda_max, self.softmax, self.normalized = float(lambda_max), bool(softmax), bool(normalized)
        self.total = float(len(self.names) if total is None else total)
        self.ema: dict[str, float | None] = {n: None for n in self.names}
        self.integral = {n: 0.0 for n in self.names}
        self.prev_error = {n: 0.0 for n in self.names}
        self.lambdas = {n: 1.0 for n in self.names}
        self.steps = 0

    def weights(self) -> dict[str, float]:
        """Current lambda per encoder (1.0 each before the first step)."""
        return dict(self.lambdas)

    def step(self, raw_scores: Mapping[str, float]) -> dict[str, float]:
        """Update with this step's raw scores; returns the weights for the next step.

        Raises:
            RecipeError: a training encoder has no score.
            NonFiniteError: a score is NaN/Inf (skip the controller update for such steps).
        """
        missing = [n for n in self.names if n not in raw_scores]
        if missing:
            raise RecipeError(
                f"controller step without score(s) for {', '.join(missing)}.",
                "pass the raw L_e of every training encoder",
            )
        values = {n: float(raw_scores[n]) for n in self.names}
        bad = [n for n, v in values.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteError(
                f"non-finite raw score for {', '.join(bad)}.",
                "skip the controller update on steps whose loss is not finite",
            )
        z: dict[str, float] = {}
        for n in self.names:
            prev = self.ema[n]
            s = values[n] if prev is None else (1.0 - self.ema_beta) * prev + self.ema_beta * values[n]
            self.ema[n] = s
            err = (s - self.floors[n]) / self.floors[n] if self.normalized else s - self.floors[n]
            err = min(max(err, -self.cost_clip), self.cost_clip)
            self.integral[n] += err
            z[n] = self.kp * err + self.ki * self.integral[n] + self.kd * (err - self.prev_error[n])
            self.prev_error[n] = err
        self.lambdas = self._weights_from(z)
        self.steps += 1
        return self.weights()

    def _weights_from(self, z: Mapping[str, float]) -> dict[str, float]:
        if not self.softmax:
            return {n: min(max(v, 0.0), self.lambda_max) for n, v in z.items()}
        out = {n: 0.0 for n in z}
        active = [n for n, v in z.items() if v > 0]
        if not active:
            return out
        temp = max(self.temperature * sum(z[n] for n in active) / len(active), 1e-12)
        top = max(z[n] for n in active)
        exps = {n: math.exp((z[n] - top) / temp) for n in active}
        norm = sum(exps.values())
        for n in active:
            out[n] = self.total * exps[n] / norm
        return out

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (floats and lists only), for checkpoints."""
        return {
            "names": list(self.names),
            "ema": [self.ema[n] for n in self.names],
            "integral": [self.integral[n] for n in self.names],
            "prev_error": [self.prev_error[n] for n in self.names],
            "lambdas": [self.lambdas[n] for n in self.names],
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the encoder list must be the same."""
        if list(state.get("names", [])) != self.names:
            raise RecipeError(
                f"controller state is for encoders {state.get('names')}, this run trains {self.names}.",
                "resume with the same encoders.train, or start a new run",
            )
        self.ema = {n: (None if v is None else float(v)) for n, v in zip(self.names, state["ema"], strict=True)}
        self.integral = {n: float(v) for n, v in zip(self.names, state["integral"], strict=True)}
        self.prev_error = {n: float(v) for n, v in zip(self.names, state["prev_error"], strict=True)}
        self.lambdas = {n: float(v) for n, v in zip(self.names, state["lambdas"], strict=True)}
        self.steps = int(state.get("steps", 0))


def balance_from_recipe(recipe: Any, floors: Mapping[str, float] | str | None = None) -> Any:
    """The balancer a recipe's ``objective.balance`` section asks for.

    Args:
        recipe: a loaded recipe whose objective is ``mmd``.
        floors: for ``controller`` mode: ``{encoder: b_e}``, a floors JSON path, or None to read
            ``objective.balance.floors`` (default ``<references.dir>/floors.json``); the file's N
            must equal ``train.rollout`` (floors are tied to N).
    """
    from rdm_mmd.config import mmd_settings

    section = mmd_settings(recipe, "the balance of per-encoder losses").balance
    names = list(recipe.encoders.train)
    mode = str(section.mode)
    if mode == "uniform":
        return UniformWeights(names)
    if mode == "static":
        from rdm_core.recipe.assemble import plain

        return StaticWeights(names, plain(section.weights) or {})
    if mode != "controller":
        raise RecipeError(f"unknown objective.balance.mode {mode!r}.", "use uniform, static or controller")
    if floors is None or isinstance(floors, str):
        from pathlib import Path

        from rdm_mmd.floors import load_floors

        path = floors or section.floors or str(Path(recipe.references.dir) / "floors.json")
        floors = load_floors(path, expect_n=int(recipe.train.rollout))
    return GatedLagrangianController(
        names,
        floors,
        kp=section.kp,
        ki=section.ki,
        kd=section.kd,
        ema_beta=section.ema_beta,
        temperature=section.temperature,
        cost_clip=section.cost_clip,
        lambda_max=section.lambda_max,
        softmax=section.softmax,
        normalized=section.normalized,
        total=section.total,
    )
