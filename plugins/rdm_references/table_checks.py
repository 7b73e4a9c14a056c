"""How the floors table and the generator's tau table disagree with a recipe (training stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.artifacts import read_json, read_meta
from rdm_core.errors import ArtifactError
from rdm_references.header_checks import objective_settings
from rdm_references.manifest import FLOORS, ManifestStore


def text_table_problems(recipe: Any) -> list[str]:
    """The generator's tau table must have one row per prompt of its pool, in order."""
    from rdm_references.text import generator_prompts, prompts_fingerprint

    joint = objective_settings(recipe)[1]
    target = joint.text_table
    if not target:
        return []
    path = Path(target)
    if not path.is_file():
        return [f"objective.joint.text_table {path} is missing"]
    if path.suffix != ".safetensors":
        return []  # a third-party .npy table carries no header to check
    try:
        meta = read_meta(path)
    except ArtifactError as exc:
        return [exc.problem]
    out = []
    if meta.get("text_encoder") not in (None, joint.text_encoder):
        out.append(
            f"objective.joint.text_table {path} was embedded by {meta.get('text_encoder')!r}, "
            f"the recipe uses {joint.text_encoder!r}"
        )
    ref_tau = (ManifestStore(recipe.references.dir).read().get("extras") or {}).get("tau", {}).get("train") or {}
    if ref_tau.get("encoder_fingerprint") and meta.get("encoder_fingerprint") != ref_tau["encoder_fingerprint"]:
        out.append(
            f"objective.joint.text_table {path} was embedded by other text-tower weights than the reference captions"
        )
    prompts = generator_prompts(recipe)
    if prompts is not None and (
        meta.get("n") != len(prompts) or meta.get("prompts_fingerprint") != prompts_fingerprint(prompts)
    ):
        out.append(
            f"objective.joint.text_table {path} has {meta.get('n')} rows that are not the generator's "
            f"{len(prompts)} prompts in order"
        )
    return out


def floor_problems(recipe: Any, stale: list[str]) -> list[str]:
    """The floors table must exist, record its N = ``train.rollout`` and cover every training
    encoder (the encoders it lacks are appended to ``stale``)."""
    balance = objective_settings(recipe)[2]
    path = Path(balance.floors) if balance.floors else Path(recipe.references.dir) / FLOORS
    n = int(recipe.train.rollout)
    if not path.is_file():
        return [
            f"floors file {path} is missing (objective.balance.mode: controller needs one; references.val must be set)"
        ]
    try:
        table = read_json(path)
    except ArtifactError as exc:
        return [exc.problem]
    out = []
    if table.get("n") is None:
        out.append(
            f"floors in {path} do not record the N they were computed at "
            "(re-import them with `rdm reference import FILE --floors-n N`)"
        )
    elif int(table["n"]) != n:
        out.append(f"floors in {path} were computed at N={table.get('n')}, the recipe trains at train.rollout={n}")
    missing = [e for e in recipe.encoders.train if e not in (table.get("floors") or {})]
    if missing:
        out.append(f"floors in {path} lack {', '.join(missing)}")
        stale.extend(m for m in missing if m not in stale)
    return out
