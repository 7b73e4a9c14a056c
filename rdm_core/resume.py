"""What ``--resume`` accepts: the run's own recipe, or an explicit change that is recorded.

A resumed run continues bit-exactly only with the recipe it was trained with. ``rdm train
--resume`` therefore compares the recipe it was given with the run's ``recipe.yaml`` (both as
persisted, so environment values never enter the comparison) and refuses any difference in a
key that changes the numbers, naming the keys. With ``--allow-recipe-change`` the run continues
with the new recipe; the previous one is kept as ``recipe_history/step_NNNNNNN.yaml`` (the recipe
in force up to that step) and ``recipe_history/changes.jsonl`` records the step and the keys.

Keys that only decide bookkeeping (logging, checkpoint and sample cadence, the CPU-time budget,
evaluation settings, extraction chunk sizes) may change freely, and so may where the run and the
references live (a project copied or moved elsewhere resumes as it was; the references themselves
are checked against the recipe by content, wherever they are).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError

RECIPE_FILE = "recipe.yaml"
HISTORY_DIR = "recipe_history"
CHANGES_FILE = "changes.jsonl"
# keys whose value never changes a trained weight (prefixes end with a dot)
BOOKKEEPING = (
    "extends",
    "description",
    "run.name",
    "run.output_dir",
    "references.dir",
    "train.max_seconds",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.sample_every",
    "train.sample_count",
    "train.max_nonfinite_steps",
    "encoders.batch_size",
    "references.batch_size",
    "eval.",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _bookkeeping(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in BOOKKEEPING)


def recipe_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (saved value, current value)}`` for every key that changes the numbers."""
    before, after = _flatten(saved), _flatten(current)
    changed = {}
    for key in sorted(set(before) | set(after)):
        if _bookkeeping(key):
            continue
        old, new = before.get(key), after.get(key)
        if old != new:
            changed[key] = (old, new)
    return changed


def _shown(changes: dict[str, tuple[Any, Any]], limit: int = 6) -> str:
    parts = [f"{k} {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in list(changes.items())[:limit]]
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(parts) + more


def check_resume_recipe(
    root: str | Path, recipe: Any, step: int, *, allow_change: bool, fix: str | None = None
) -> dict[str, Any]:
    """Compare ``recipe`` with the run's saved recipe before resuming at ``step``.

    Args:
        root: the run directory.
        recipe: the recipe ``--resume`` was given.
        step: the checkpoint the run resumes from.
        allow_change: ``--allow-recipe-change``: archive the old recipe and record the change.
        fix: the fix shown when refused (default: the ``rdm train`` options).

    Returns:
        The changed keys (``{key: (old, new)}``; empty when the recipe is the run's).

    Raises:
        RecipeError: the recipe changed and ``allow_change`` is false.
    """
    import yaml

    from rdm_core.artifacts import append_jsonl, atomic_path
    from rdm_core.recipe.persist import persisted

    saved_file = Path(root) / RECIPE_FILE
    if not saved_file.is_file():
        return {}
    try:
        saved = yaml.safe_load(saved_file.read_text()) or {}
    except yaml.YAMLError:
        raise RecipeError(
            f"{saved_file} is not valid YAML, so --resume cannot tell whether the recipe changed.",
            "restore it, or resume with --allow-recipe-change to continue with the given recipe (recorded)",
        ) from None
    changes = recipe_changes(saved, persisted(recipe))
    if not changes:
        return {}
    if not allow_change:
        raise RecipeError(
            f"resuming with a recipe that differs from the run's ({saved_file}): {_shown(changes)}.",
            fix
            or f"resume with the run's own recipe (`rdm train {saved_file} --resume`), choose another run.name, "
            f"or pass --allow-recipe-change to continue from step {step} with the new values (recorded)",
        )
    history = Path(root) / HISTORY_DIR
    with atomic_path(history / f"step_{step:07d}.yaml") as tmp:
        tmp.write_text(saved_file.read_text())
    append_jsonl(
        history / CHANGES_FILE,
        {"step": int(step), "changed": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}},
    )
    return changes
