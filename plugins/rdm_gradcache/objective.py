"""The training objective of a recipe: per-encoder raw distances, joint coupling, weights.

References are paired with encoders BY NAME (``<references.dir>/<encoder>.safetensors``) and
their headers are checked against the recipe before step 1, so a stale or mismatched reference
stops the run with the command that rebuilds it (the authors' trainer paired them by position).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.recipe.assemble import load_reference, reference_path

# Reference kinds that use no kernel: their headers have kernel / bandwidth_scale null.
KERNEL_FREE_KINDS = frozenset({"frechet", "sliced_wasserstein"})


def _rebuild_hint(recipe_ref: str) -> str:
    return f"rebuild the references with `rdm reference build {recipe_ref}`"


def load_text_table(path: str, device: torch.device) -> Tensor:
    """The tau table (prompt rows x text dim), from ``.safetensors`` (key ``tau``) or ``.npy``."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(
            f"joint.text_table {p} does not exist.",
            "build the text-feature table for the prompt pool, or set joint.enabled: false",
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


class Objective:
    """Raw ``L_e`` per training encoder, combined with self-normalisation and weights.

    Args:
        recipe: the loaded recipe.
        encoders: the training encoders (name -> module with ``.spec``), in recipe order.
        device: where the references and the tau table live.
        rollout: the global batch N (floors must match it).
        recipe_ref: how the user named the recipe (for the rebuild hint).
    """

    def __init__(
        self, recipe: Any, encoders: Mapping[str, Any], device: torch.device, rollout: int, recipe_ref: str = "RECIPE"
    ) -> None:
        self.names = list(encoders)
        self.eps = float(recipe.balance.eps)
        self.joint = bool(recipe.joint.enabled)
        self.tau: Tensor | None = None
        if self.joint:
            if not recipe.joint.text_table:
                raise RecipeError(
                    "joint.enabled is true but joint.text_table is not set.",
                    "set joint.text_table to the tau table of the generator's prompt pool",
                )
            self.tau = load_text_table(recipe.joint.text_table, device)
        self.references: dict[str, Any] = {}
        self.betas: dict[str, float] = {}
        for name, enc in encoders.items():
            path = reference_path(recipe, name)
            # A joint reference stores [phi | beta tau] rows: its dim includes the text block.
            dim = int(enc.spec.dim) + (int(self.tau.shape[1]) if self.tau is not None else 0)
            expect = {
                "encoder": name,
                "dim": dim,
                "kind": str(recipe.distance.reference),
                "kernel": str(recipe.distance.kernel),
                "bandwidth_scale": float(recipe.distance.bandwidth_scale),
                "joint": self.joint,
            }
            if str(recipe.distance.reference) in KERNEL_FREE_KINDS:  # their headers record no kernel
                del expect["kernel"], expect["bandwidth_scale"]
            if not path.exists():
                raise ArtifactError(f"no reference set for encoder {name!r} at {path}.", _rebuild_hint(recipe_ref))
            try:
                ref = load_reference(path, expect=expect, device=device)
            except ArtifactError as exc:
                raise type(exc)(
                    f"reference for {name!r} ({path}): {exc.problem}", exc.fix or _rebuild_hint(recipe_ref)
                ) from exc
            self.references[name] = ref
            if self.joint:
                beta = ref.header.get("beta") or ref.header.get("bandwidth")  # beta, else sigma (docs/method.md)
                if beta is None:
                    raise ReferenceMismatchError(f"joint reference {path} records no beta.", _rebuild_hint(recipe_ref))
                self.betas[name] = float(beta)
        # uniform / static / controller (floors file checked against N = train.rollout)
        from rdm_mmd.balance import balance_from_recipe

        self.balancer = balance_from_recipe(recipe)
        gen_chunk = int(recipe.distance.gen_chunk)
        for ref in self.references.values():
            if "gen_chunk" in getattr(ref, "runtime_options", lambda: ())():
                ref.configure(gen_chunk=gen_chunk)

    # -- features ---------------------------------------------------------------------------
    def couple(self, feats: dict[str, Tensor], caption_ids: Tensor | None, frames: int = 1) -> dict[str, Tensor]:
        """Append ``beta_e * tau(caption)`` to every feature row when the joint feature is on."""
        if not self.joint:
            return feats
        if caption_ids is None:
            raise ShapeError(
                "joint.enabled needs caption ids, but the generator's conditions have none.",
                "use a prompt-pool generator that returns Conditions.caption_ids, or set joint.enabled: false",
            )
        from rdm_mmd.joint import joint_features

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
        return {n: joint_features(f.float(), rows.to(f.device), self.betas[n]) for n, f in feats.items()}

    # -- loss -------------------------------------------------------------------------------
    def weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.balancer.weights().items()}

    def loss_fn(self, feats: dict[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """Global features -> ``(sum_e w_e L_e / (|L_e| + eps), logs)``; logs the raw ``L_e``."""
        from rdm_mmd.balance import combine

        raw = {n: self.references[n].distance(feats[n].float()) for n in self.names}
        weights = self.weights()
        loss = combine(raw, weights, self.eps)
        return loss, {"raw": {n: float(v.detach()) for n, v in raw.items()}, "weights": weights}

    def begin_step(self, step: int) -> None:
        """References that draw per-step real samples draw the same ones on every rank and on resume."""
        for ref in self.references.values():
            if hasattr(ref, "set_step"):
                ref.set_step(step)

    def after_step(self, raw: Mapping[str, float]) -> None:
        """Controller update with the global batch's raw scores; weights apply to the next step."""
        self.balancer.step(dict(raw))

    def floors(self) -> dict[str, float] | None:
        """The controller's floors ``b_e`` (None when the weights are not controlled)."""
        from rdm_mmd.balance import GatedLagrangianController

        return dict(self.balancer.floors) if isinstance(self.balancer, GatedLagrangianController) else None

    def state_dict(self) -> dict[str, Any]:
        return {"balance": self.balancer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "balance" in state:
            self.balancer.load_state_dict(state["balance"])
