"""The ``mmd`` objective: per-encoder raw distances, joint coupling, self-normalisation, weights.

References are paired with encoders BY NAME (``<references.dir>/<encoder>.safetensors``) and
their headers are checked against the recipe before step 1, so a stale or mismatched reference
stops the run with the command that rebuilds it (the authors' trainer paired them by position). A
trainer sees only the :class:`rdm_core.interfaces.Objective` contract and its optional capabilities
(stepped, stateful, feature coupling, plots), all implemented here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.capabilities import ConfigurableReferenceSet, SteppedReferenceSet
from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.interfaces import Conditions, ObjectiveContext
from rdm_core.recipe.assemble import load_reference, reference_path
from rdm_mmd.balance import GatedLagrangianController, balance_from_recipe, combine
from rdm_mmd.joint import joint_features

# Reference kinds that use no kernel: their headers have kernel / bandwidth_scale null.
KERNEL_FREE_KINDS = frozenset({"frechet", "sliced_wasserstein"})


def _rebuild_hint(recipe_ref: str) -> str:
    return f"rebuild the references with `rdm reference build {recipe_ref}`"


def load_text_table(path: str, device: torch.device) -> Tensor:
    """The tau table (prompt rows x text dim), from ``.safetensors`` (key ``tau``) or ``.npy``."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(
            f"objective.joint.text_table {p} does not exist.",
            "build the text-feature table for the prompt pool, or set objective.joint.enabled: false",
        )
    if p.suffix == ".npy":
        import numpy as np

        table = torch.from_numpy(np.array(np.load(p, mmap_mode="r", allow_pickle=False), dtype=np.float32))
    else:
        from rdm_core.artifacts import load_tensors

        tensors, _ = load_tensors(p)
        if "tau" not in tensors and len(tensors) != 1:
            raise ArtifactError(
                f"{p} holds {sorted(tensors)}, none named 'tau'.", "store the table under the key 'tau'"
            )
        table = tensors.get("tau", next(iter(tensors.values())))
    if table.dim() != 2:
        raise ShapeError(
            f"text table {p} has shape {tuple(table.shape)}; expected (prompts, dim).", "rebuild the table"
        )
    return table.float().to(device)


class MMDObjective:
    """Raw ``L_e`` per training encoder, combined with self-normalisation and weights.

    Implements :class:`~rdm_core.interfaces.Objective` and the capabilities (all in
    :mod:`rdm_core.capabilities`) ``SteppedObjective`` (per-step reference draws; the controller
    update), ``StatefulObjective`` (the controller's state) and ``FeatureCoupling`` (the joint
    image-text feature).

    Args:
        context: the recipe (``objective`` typed by :class:`rdm_mmd.config.MMDSettings`), the
            training encoders, the device, the global batch N (floors must match it) and how
            the user named the recipe (for the rebuild hint).
    """

    def __init__(self, context: ObjectiveContext) -> None:
        recipe, settings = context.recipe, context.settings
        distance, joint = settings.distance, settings.joint
        self.names = list(context.encoders)
        self.eps = float(settings.balance.eps)
        self.joint = bool(joint.enabled)
        self.tau: Tensor | None = None
        if self.joint:
            if not joint.text_table:
                raise RecipeError(
                    "objective.joint.enabled is true but objective.joint.text_table is not set.",
                    "set objective.joint.text_table to the tau table of the generator's prompt pool",
                )
            self.tau = load_text_table(joint.text_table, context.device)
        hint = _rebuild_hint(context.recipe_ref)
        self.references: dict[str, Any] = {}
        self.betas: dict[str, float] = {}
        for name, enc in context.encoders.items():
            path = reference_path(recipe, name)
            # A joint reference stores [phi | beta tau] rows: its dim includes the text block.
            dim = int(enc.spec.dim) + (int(self.tau.shape[1]) if self.tau is not None else 0)
            expect = {"encoder": name, "dim": dim, "kind": str(distance.reference), "joint": self.joint}
            if str(distance.reference) not in KERNEL_FREE_KINDS:  # their headers record no kernel
                expect.update(kernel=str(distance.kernel), bandwidth_scale=float(distance.bandwidth_scale))
            if not path.exists():
                raise ArtifactError(f"no reference set for encoder {name!r} at {path}.", hint)
            try:
                ref = load_reference(path, expect=expect, device=context.device)
            except ArtifactError as exc:
                raise type(exc)(f"reference for {name!r} ({path}): {exc.problem}", exc.fix or hint) from exc
            if isinstance(ref, ConfigurableReferenceSet) and "gen_chunk" in ref.runtime_options():
                ref.configure(gen_chunk=int(distance.gen_chunk))
            self.references[name] = ref
            if self.joint:
                beta = ref.header.get("beta") or ref.header.get("bandwidth")  # beta, else sigma (docs/method.md)
                if beta is None:
                    raise ReferenceMismatchError(f"joint reference {path} records no beta.", hint)
                self.betas[name] = float(beta)
        # uniform / static / controller (the floors file is checked against N = train.rollout)
        self.balancer = balance_from_recipe(recipe)

    # -- recipe rewrites (rdm run) -----------------------------------------------------------------
    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: at most 16 landmarks and 256 bandwidth rows, 2 floor draws, the
        tau table inside the rehearsal directory."""
        distance, balance, joint = (dict(args.get(k) or {}) for k in ("distance", "balance", "joint"))
        for key, cap in (("landmarks", 16), ("bandwidth_subsample", 256)):
            if key in distance:
                distance[key] = min(int(distance[key]), cap)
        balance["floor_draws"] = 2
        if joint.get("enabled"):
            joint["text_table"] = rehearsal.output(joint.get("text_table"))
        return {**args, "distance": distance, "balance": balance, "joint": joint}

    @classmethod
    def relocate_outputs(cls, args: dict[str, Any], under: Any) -> dict[str, Any]:
        """``rdm run --workdir``: the tau table the reference build writes moves with the references."""
        joint = dict(args.get("joint") or {})
        joint["text_table"] = under(joint.get("text_table"))
        return {**args, "joint": joint}

    # -- FeatureCoupling ----------------------------------------------------------------------
    def couple(self, features: dict[str, Tensor], conditions: Any, frames: int = 1) -> dict[str, Tensor]:
        """Append ``beta_e * tau(caption)`` to every feature row when the joint feature is on."""
        if not self.joint:
            return features
        caption_ids = conditions.caption_ids if isinstance(conditions, Conditions) else None
        if caption_ids is None:
            raise ShapeError(
                "objective.joint.enabled needs caption ids, but the generator's conditions have none.",
                "use a prompt-pool generator that returns Conditions.caption_ids, or set objective.joint.enabled: false",
            )
        assert self.tau is not None
        ids = caption_ids.to(self.tau.device).long()
        if frames > 1:  # video: every frame of a sample shares its caption
            ids = ids.repeat_interleave(frames)
        if int(ids.max()) >= self.tau.shape[0] or int(ids.min()) < 0:
            raise ShapeError(
                f"caption id {int(ids.max())} is outside the text table ({self.tau.shape[0]} rows).",
                "the text table must be row-aligned with the generator's prompt pool",
            )
        rows = self.tau[ids]
        return {n: joint_features(f, rows.to(f.device), self.betas[n]) for n, f in features.items()}

    # -- Objective ----------------------------------------------------------------------------
    def weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.balancer.weights().items()}

    def loss(self, features: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """Global features -> ``(sum_e w_e L_e / (|L_e| + eps), logs)``; logs the raw ``L_e``."""
        raw = {n: self.references[n].distance(features[n].float()) for n in self.names}
        weights = self.weights()
        loss = combine(raw, weights, self.eps)
        return loss, {"raw": {n: float(v.detach()) for n, v in raw.items()}, "weights": weights}

    # -- SteppedObjective ---------------------------------------------------------------------
    def begin_step(self, step: int) -> None:
        """References that draw per-step real samples draw the same ones on every rank and on resume."""
        for ref in self.references.values():
            if isinstance(ref, SteppedReferenceSet):
                ref.set_step(step)

    def after_step(self, logs: Mapping[str, Any]) -> None:
        """Controller update with the global batch's raw scores; weights apply to the next step."""
        self.balancer.step(dict(logs["raw"]))

    # -- PlottingObjective --------------------------------------------------------------------
    def save_plots(self, metrics: Path, run_dir: Path) -> list[Path]:
        """``controller.png`` (weights, raw scores against their floors) when a controller sets the
        weights; nothing otherwise."""
        if not isinstance(self.balancer, GatedLagrangianController):
            return []
        from rdm_mmd.plots import save_controller_plot

        png = save_controller_plot(metrics, dict(self.balancer.floors), Path(run_dir) / "controller.png")
        return [png] if png is not None else []

    # -- StatefulObjective --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"balance": self.balancer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "balance" in state:
            self.balancer.load_state_dict(state["balance"])
