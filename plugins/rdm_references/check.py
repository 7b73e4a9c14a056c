"""``check_references(recipe, encoders, stage=...)``: the one decision whether reference files fit a recipe.

``rdm train`` (before step 1), ``rdm eval`` (before scoring) and ``rdm run`` (per stage) call it.
It reads headers and the manifest only (no tensors: their content hashes are verified when they
are loaded) and compares them with everything in the recipe that changes the numbers:

* ``stage="train"``, per training encoder: the reference kind, the encoder's name, feature dim
  and weights fingerprint, the kernel and all its arguments, the bandwidth scale and the
  bandwidth itself, the landmark count, the seed, the reference options (``objective.distance.args``),
  joint vs marginal and ``s_txt``, and the source fingerprint (stale features); then the floors'
  N (controller) and the tau table (joint).
* ``stage="eval"``, per battery encoder: both evaluation banks exist and hold that encoder's
  features at its dim, extracted with the same weights from the current sources, at
  ``references.eval_bank_size`` rows.

Every mismatch is collected into one :class:`ReferenceMismatchError` whose fix is the rebuild
command. A field a file does not record (``null``, typically in a file imported from the
authors' formats, or written by an older rdm) cannot be compared: it is accepted with one
warning line per file naming those fields, never silently. The identity fields ``kind``,
``encoder`` and ``dim`` are required.

The comparisons themselves are in :mod:`rdm_references.header_checks` (reference and bank
headers) and :mod:`rdm_references.table_checks` (floors and tau table).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdm_core.artifacts import read_meta
from rdm_core.errors import ArtifactError, ReferenceMismatchError
from rdm_core.interfaces import Encoder
from rdm_core.recipe.assemble import encoder_names, reference_path
from rdm_references.header_checks import bank_problems, objective_settings, reference_problems
from rdm_references.manifest import ManifestStore
from rdm_references.stages import encoder_fingerprint
from rdm_references.table_checks import floor_problems, text_table_problems

STAGES = ("train", "eval")


def rebuild_command(recipe: Any, encoders: list[str] | None = None) -> str:
    """The command that rebuilds ``encoders`` (all when ``None``) of ``recipe``."""
    from rdm_core.recipe.load import recipe_path

    path = recipe_path(recipe)
    cmd = f"rdm reference build {path if path is not None else 'RECIPE'}"
    if encoders:
        cmd += f" --encoders {','.join(encoders)}"
    return cmd


def _encoder_dim(recipe: Any, name: str, part: Mapping[str, Any], encoder: Any) -> int | None:
    """The feature dim: the live encoder's spec, else the manifest, else a full-size spec."""
    if isinstance(encoder, Encoder) and recipe.encoders.variant == "full":
        return int(encoder.spec.dim)
    if part.get("dim") is not None:
        return int(part["dim"])
    if recipe.encoders.variant == "full":
        from rdm_core.plugins import registry

        spec = registry("encoders").spec(name)
        return int(spec.dim) if spec is not None else None
    return None


def _fingerprint(encoder: Any) -> str | None:
    """A live encoder's weights fingerprint (a string is taken as one already computed)."""
    if encoder is None or isinstance(encoder, str):
        return encoder
    return encoder_fingerprint(encoder)


def _unrecorded_line(path: Path, header: Mapping[str, Any], fields: list[str]) -> str:
    origin = header.get("imported_from") or {}
    source = f", imported from {origin['file']}" if isinstance(origin, Mapping) and origin.get("file") else ""
    return f"{path}{source} does not record {', '.join(fields)}: accepted without comparing them with the recipe"


def check_references(
    recipe: Any, encoders: Mapping[str, Any] | None = None, *, stage: str = "train", warn: bool = True
) -> list[str]:
    """Refuse reference files that do not fit the recipe (see the module docstring).

    Args:
        recipe: the loaded recipe.
        encoders: the live encoders (name -> module, or name -> weights fingerprint); their
            weights are compared with the ones the files were extracted with. Without them the
            weights are not compared.
        stage: ``"train"`` (training references, floors, tau table) or ``"eval"`` (eval banks).
        warn: print the warnings (one line per file with unrecorded fields) on stderr.

    Returns:
        The warnings.

    Raises:
        ReferenceMismatchError: listing every problem; the fix is the rebuild command.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    store = ManifestStore(recipe.references.dir)
    problems: list[str] = []
    warnings: list[str] = []
    stale: list[str] = []
    names = list(recipe.encoders.train) if stage == "train" else encoder_names(recipe, "all")
    for name in names:
        part = store.encoder_part(name)
        enc = (encoders or {}).get(name)
        fingerprint = _fingerprint(enc)
        dim = _encoder_dim(recipe, name, part, None if isinstance(enc, str) else enc)
        files = (
            [("", reference_path(recipe, name))]
            if stage == "train"
            else [
                (split, Path(recipe.references.dir) / "eval" / f"{name}_{split}.safetensors")
                for split in ("train", "val")
            ]
        )
        found: list[str] = []
        for split, path in files:
            if not path.is_file():
                found.append(f"{name}: {path} is missing")
                continue
            try:
                header = read_meta(path)
            except ArtifactError as exc:
                found.append(f"{name}: {exc.problem}")
                continue
            if stage == "train":
                bad, unrecorded = reference_problems(recipe, name, header, part, dim, fingerprint)
            else:
                bad, unrecorded = bank_problems(recipe, name, split, header, part, dim, fingerprint)
            found.extend(f"{name}: {path}: {p}" for p in bad)
            if unrecorded:
                warnings.append(_unrecorded_line(path, header, unrecorded))
        if found:
            problems.extend(found)
            stale.append(name)
    if stage == "train":
        _, joint, balance = objective_settings(recipe)
        if balance.mode == "controller":
            problems.extend(floor_problems(recipe, stale))
        if joint.enabled:
            problems.extend(text_table_problems(recipe))
    if warn:
        from rdm_core.console import err_console

        for line in warnings:
            err_console.print(f"warning: {line}", style="yellow", soft_wrap=True)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ReferenceMismatchError(
            f"the references in {recipe.references.dir} do not match the recipe: {shown}.",
            f"rebuild them: `{rebuild_command(recipe, stale or None)}`",
        )
    return warnings


def verify_sources(
    recipe: Any, splits: tuple[str, ...] = ("train", "val"), *, rehash: bool = False
) -> dict[str, dict[str, list[str]]]:
    """Compare the recipe's sources with the items recorded by the last build.

    Args:
        recipe: the loaded recipe.
        splits: which sources to check.
        rehash: hash every file even when its size and mtime are unchanged.

    Returns:
        ``{split: {"added": [...], "missing": [...], "changed": [...]}}`` (keys of items).

    Raises:
        ArtifactError: no build has been recorded in ``references.dir`` yet.
    """
    from rdm_references.build_sources import open_sources
    from rdm_references.manifest import diff_items, item_fingerprints

    store = ManifestStore(recipe.references.dir)
    out: dict[str, dict[str, list[str]]] = {}
    for split, source in open_sources(recipe, splits).items():
        recorded = store.source_part(split)
        if not recorded.get("items"):
            raise ArtifactError(
                f"no {split} build is recorded in {recipe.references.dir}.", f"run `{rebuild_command(recipe)}` first"
            )
        now = item_fingerprints(source, None if rehash else recorded, description=f"verify {split}")
        out[split] = diff_items(recorded["items"], now)
    return out
