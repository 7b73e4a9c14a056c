"""``check_references(recipe)``: refuse to train on references that do not match the recipe.

Called by ``rdm train`` before step 1. It reads headers and the manifest only (no tensors, no
image hashing), collects every mismatch (missing file, other encoder, kind, kernel, dimension,
bandwidth scale, bandwidth, landmarks, joint beta / s_txt, stale features, floors at another N)
and raises one :class:`ReferenceMismatchError` whose fix is the exact rebuild command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdm_core.artifacts import read_json, read_meta
from rdm_core.errors import ArtifactError, ReferenceMismatchError
from rdm_core.interfaces import Encoder
from rdm_core.recipe.assemble import reference_path
from rdm_references.manifest import FLOORS, ManifestStore


def rebuild_command(recipe: Any, encoders: list[str] | None = None) -> str:
    """The command that rebuilds ``encoders`` (all when ``None``) of ``recipe``."""
    from rdm_core.recipe.load import recipe_path

    path = recipe_path(recipe)
    cmd = f"rdm reference build {path if path is not None else 'RECIPE'}"
    if encoders:
        cmd += f" --encoders {','.join(encoders)}"
    return cmd


def _close(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _kernel_name(kernel: Any) -> Any:
    return kernel.get("name") if isinstance(kernel, Mapping) else kernel


def reference_problems(
    recipe: Any, encoder: str, header: Mapping[str, Any], part: Mapping[str, Any], dim: int | None
) -> list[str]:
    """Every way ``header`` (a training reference of ``encoder``) disagrees with the recipe."""
    d, joint = recipe.distance, recipe.joint
    out: list[str] = []
    if header.get("encoder") != encoder:
        out.append(f"it was built for encoder {header.get('encoder')!r}")
    if header.get("kind") != d.reference:
        out.append(f"it is a {header.get('kind')!r} reference, the recipe uses {d.reference!r}")
    if header.get("kernel") is not None and _kernel_name(header.get("kernel")) != d.kernel:
        out.append(f"kernel {_kernel_name(header.get('kernel'))!r}, the recipe uses {d.kernel!r}")
    if not _close(header.get("bandwidth_scale"), d.bandwidth_scale):
        out.append(f"bandwidth scale {header.get('bandwidth_scale')}, the recipe uses {d.bandwidth_scale}")
    bw = (part or {}).get("bandwidth") or {}
    if bw.get("sigma") is not None and not _close(header.get("bandwidth"), bw["sigma"]):
        out.append(f"bandwidth {header.get('bandwidth')}, the median heuristic gives {bw['sigma']}")
    if (
        header.get("kind") == "nystrom"
        and header.get("landmarks") is not None
        and int(header["landmarks"]) != int(d.landmarks)
    ):
        out.append(f"{header['landmarks']} landmarks, the recipe uses {d.landmarks}")
    if joint.enabled:
        if header.get("beta") is None:
            out.append("it is not a joint reference, the recipe has joint.enabled")
        elif joint.s_txt is not None and not _close(header.get("s_txt"), joint.s_txt):
            out.append(f"s_txt {header.get('s_txt')}, the recipe uses {joint.s_txt}")
    elif header.get("beta") is not None:
        out.append("it is a joint reference, the recipe has joint.enabled: false")
    if dim is not None and header.get("dim") is not None:
        want = dim + (int(header.get("d_txt") or 0) if joint.enabled else 0)
        if int(header["dim"]) != want:
            out.append(f"dim {header['dim']}, the encoder gives {want}")
    want_fp = (part or {}).get("reference_source_fingerprint")
    if want_fp and header.get("source_fingerprint") != want_fp:
        out.append("its features are stale (the images, captions or encoder changed since it was built)")
    return out


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


def check_references(recipe: Any, encoders: Mapping[str, Any] | None = None) -> None:
    """Refuse references that do not match the recipe's encoders, kernel, bandwidth or N.

    Args:
        recipe: the loaded recipe.
        encoders: optionally the built training encoders (name -> module); their weights are
            then compared with the ones the reference features were extracted with.

    Raises:
        ReferenceMismatchError: listing every problem; the fix is the rebuild command.
    """
    from rdm_references.stages import encoder_fingerprint

    store = ManifestStore(recipe.references.dir)
    problems: list[str] = []
    stale: list[str] = []
    for name in recipe.encoders.train:
        path = reference_path(recipe, name)
        if not path.is_file():
            problems.append(f"{name}: {path} is missing")
            stale.append(name)
            continue
        try:
            header = read_meta(path)
        except ArtifactError as exc:
            problems.append(f"{name}: {exc.problem}")
            stale.append(name)
            continue
        part = store.encoder_part(name)
        enc = (encoders or {}).get(name)
        found = [
            f"{name}: {path}: {p}"
            for p in reference_problems(recipe, name, header, part, _encoder_dim(recipe, name, part, enc))
        ]
        extracted_with = ((part.get("splits") or {}).get("train") or {}).get("encoder_fingerprint")
        if enc is not None and extracted_with and encoder_fingerprint(enc) != extracted_with:
            found.append(f"{name}: the encoder weights differ from the ones the references were extracted with")
        if found:
            problems.extend(found)
            stale.append(name)
    if recipe.balance.mode == "controller":
        problems.extend(_floor_problems(recipe, stale))
    if recipe.joint.enabled:
        problems.extend(_text_table_problems(recipe))
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ReferenceMismatchError(
            f"the references in {recipe.references.dir} do not match the recipe: {shown}.",
            f"rebuild them: `{rebuild_command(recipe, stale or None)}`",
        )


def _text_table_problems(recipe: Any) -> list[str]:
    """The generator's tau table must have one row per prompt of its pool, in order (SPEC 16.18)."""
    from rdm_references.text import generator_prompts, prompts_fingerprint

    target = recipe.joint.text_table
    if not target:
        return []
    path = Path(target)
    if not path.is_file():
        return [f"joint.text_table {path} is missing"]
    if path.suffix != ".safetensors":
        return []  # a third-party .npy table carries no header to check
    try:
        meta = read_meta(path)
    except ArtifactError as exc:
        return [exc.problem]
    out = []
    if meta.get("text_encoder") not in (None, recipe.joint.text_encoder):
        out.append(
            f"joint.text_table {path} was embedded by {meta.get('text_encoder')!r}, "
            f"the recipe uses {recipe.joint.text_encoder!r}"
        )
    ref_tau = (ManifestStore(recipe.references.dir).read().get("extras") or {}).get("tau", {}).get("train") or {}
    if ref_tau.get("encoder_fingerprint") and meta.get("encoder_fingerprint") != ref_tau["encoder_fingerprint"]:
        out.append(f"joint.text_table {path} was embedded by other text-tower weights than the reference captions")
    prompts = generator_prompts(recipe)
    if prompts is not None and (
        meta.get("n") != len(prompts) or meta.get("prompts_fingerprint") != prompts_fingerprint(prompts)
    ):
        out.append(
            f"joint.text_table {path} has {meta.get('n')} rows that are not the generator's "
            f"{len(prompts)} prompts in order"
        )
    return out


def _floor_problems(recipe: Any, stale: list[str]) -> list[str]:
    path = Path(recipe.balance.floors) if recipe.balance.floors else Path(recipe.references.dir) / FLOORS
    n = int(recipe.train.rollout)
    if not path.is_file():
        return [f"floors file {path} is missing (balance.mode: controller needs one; references.val must be set)"]
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
    from rdm_references.manifest import diff_items, item_fingerprints
    from rdm_references.pipeline import open_sources

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
