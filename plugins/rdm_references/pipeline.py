"""``rdm reference build RECIPE``: from images (or teacher renders) to every reference a recipe needs.

Order of work for one run (any ``--encoders`` subset, ``train`` and/or ``val`` split):

1. open the sources (``references.train`` with ``references.filters``; ``references.val``) and
   fingerprint every item (re-using hashes of files whose size and mtime did not change);
2. joint recipes: tau tables of the reference captions and of the generator's prompt pool;
3. extract features shard by shard: each shard's images are read once and pushed through every
   encoder that still lacks that shard; each shard file is written atomically;
4. per encoder: median bandwidth, the training reference set (training encoders), evaluation
   banks, controller floors; a step whose inputs and output are unchanged is skipped;
5. the merged ``manifest.json`` and ``floors.json``.

A killed run resumes at step 3 with the finished shards skipped. Disjoint ``--encoders``
subsets may run as separate processes on one directory (see :mod:`rdm_references.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.devices import resolve_device
from rdm_core.errors import RecipeError
from rdm_core.recipe.assemble import encoder_names
from rdm_core.recipe.persist import persisted
from rdm_mmd.config import mmd_settings
from rdm_references import stages
from rdm_references.build_sources import open_sources
from rdm_references.encoder_outputs import finish_encoder
from rdm_references.reference_build import SPLITS, ReferenceBuild
from rdm_references.report import BuildReport, print_report

__all__ = ["build_references", "run_build", "select_encoders"]


def select_encoders(recipe: Any, subset: str | list[str] | None) -> list[str]:
    """The encoders to build: the whole battery, or a validated ``--encoders`` subset."""
    battery = encoder_names(recipe, "all")
    if not battery:
        raise RecipeError("the recipe lists no encoders.", "set encoders.train (and encoders.held_out)")
    if subset is None:
        return battery
    wanted = [s.strip() for s in (subset.split(",") if isinstance(subset, str) else subset) if s.strip()]
    unknown = [w for w in wanted if w not in battery]
    if unknown or not wanted:
        raise RecipeError(
            f"--encoders names {unknown or '(nothing)'} not in the recipe's battery.",
            f"choose from: {', '.join(battery)}",
        )
    return [b for b in battery if b in wanted]


def settings_of(recipe: Any) -> dict[str, Any]:
    """The recipe settings recorded in the manifest."""
    refs, settings = recipe.references, mmd_settings(recipe)
    return {
        "reference": stages.reference_settings(recipe),
        "resolution": int(refs.resolution),
        "shard_size": int(refs.shard_size),
        "eval_bank_size": int(refs.eval_bank_size),
        "floor_draws": int(settings.balance.floor_draws),
        "rollout": int(recipe.train.rollout),
        "bandwidth_subsample": int(settings.distance.bandwidth_subsample),
        "encoders": {
            "train": list(recipe.encoders.train),
            "held_out": list(recipe.encoders.held_out),
            "variant": recipe.encoders.variant,
        },
        "joint": persisted(settings.joint),
    }


REAL_GRID = "real_grid.png"


def save_real_grid(source: Any, path: Path, count: int = 64) -> None:
    """A grid of the first reference images, the picture runs put beside their sample grids."""
    from rdm_core.images import save_grid

    batch = source.read(list(range(min(count, len(source)))))
    save_grid(batch.images, path)


def build_references(
    recipe: Any, encoders: str | list[str] | None = None, splits: tuple[str, ...] = SPLITS, *, device: Any = None
) -> BuildReport:
    """Build (or resume) every reference artifact a recipe needs.

    Args:
        recipe: a loaded recipe (:func:`rdm_core.recipe.load.load_recipe`).
        encoders: a subset of the battery (``"a,b"`` or a list); ``None`` builds all of it.
        splits: ``("train", "val")``, or one of them. The train split yields bandwidths,
            training references and train banks; the val split yields val banks and floors
            (which need the training reference on disk).
        device: torch device for the encoders; default from ``run.device``.

    Returns:
        A :class:`BuildReport`; the artifacts are under ``references.dir``.

    Raises:
        RecipeError: unknown encoder subset, missing or uncaptioned sources.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise RecipeError(f"unknown split(s) {bad or '(none)'}.", "use --split train or --split val (or omit it)")
    mmd_settings(recipe)  # the kernel, bandwidth rule and reference kind come from the mmd objective
    names = select_encoders(recipe, encoders)
    build = ReferenceBuild(
        recipe, names, tuple(splits), device if device is not None else resolve_device(recipe.run.device)
    )
    if "val" in splits and recipe.references.val is None:
        build.report.notes.append("references.val is not set: no val banks and no floors")
    build.remove_stale_outputs()
    sources = open_sources(recipe, tuple(splits))
    if "train" in sources:
        save_real_grid(sources["train"], Path(recipe.references.dir) / REAL_GRID)
    build.fingerprint_sources(sources)
    build.build_tau(sources)
    build.extract(sources)
    for name in names:
        finish_encoder(build, name)
    manifest = build.store.merge(settings_of(recipe), int(recipe.train.rollout))
    build.report.floors = manifest.get("floors")
    return build.report


def run_build(args: Any) -> int:
    """CLI entry: ``rdm reference build RECIPE [--encoders a,b] [--split train|val] [key=value ...]``."""
    from rdm_core.recipe.load import load_recipe

    recipe = load_recipe(args.recipe, list(args.overrides or []))
    report = build_references(recipe, args.encoders, (args.split,) if args.split else SPLITS)
    print_report(report)
    return 0
