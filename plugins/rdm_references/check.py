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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdm_core.artifacts import read_json, read_meta
from rdm_core.errors import ArtifactError, ReferenceMismatchError
from rdm_core.interfaces import Encoder
from rdm_core.recipe.assemble import encoder_names, reference_path
from rdm_references.manifest import FLOORS, ManifestStore
from rdm_references.stages import encoder_fingerprint, reference_settings

STAGES = ("train", "eval")
REQUIRED = ("kind", "encoder", "dim")


def rebuild_command(recipe: Any, encoders: list[str] | None = None) -> str:
    """The command that rebuilds ``encoders`` (all when ``None``) of ``recipe``."""
    from rdm_core.recipe.load import recipe_path

    path = recipe_path(recipe)
    cmd = f"rdm reference build {path if path is not None else 'RECIPE'}"
    if encoders:
        cmd += f" --encoders {','.join(encoders)}"
    return cmd


def _settings(recipe: Any) -> tuple[Any, Any, Any]:
    """The recipe's ``objective.distance``, ``objective.joint`` and ``objective.balance`` (the MMD
    objective's settings; another objective is refused in one line)."""
    from rdm_mmd.config import mmd_settings  # here: `rdm eval` checks its banks without them

    settings = mmd_settings(recipe, "checking reference sets")
    return settings.distance, settings.joint, settings.balance


def _same(have: Any, want: Any) -> bool:
    """Equal, with a relative tolerance on numbers, recursively through mappings and lists."""
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, (bool, int)) and isinstance(want, (bool, int)) and bool(have) == bool(want)
    if isinstance(have, (int, float)) and isinstance(want, (int, float)):
        return math.isclose(float(have), float(want), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(have, Mapping) and isinstance(want, Mapping):
        return set(have) == set(want) and all(_same(have[k], want[k]) for k in have)
    if isinstance(have, (list, tuple)) and isinstance(want, (list, tuple)):
        return len(have) == len(want) and all(_same(a, b) for a, b in zip(have, want, strict=True))
    return have == want


_LABELS = {
    "kind": "it is a {have!r} reference, the recipe uses {want!r}",
    "kernel": "kernel {have!r}, the recipe uses {want!r}",
    "kernel_args": "kernel arguments {have}, the recipe uses {want}",
    "bandwidth_scale": "bandwidth scale {have}, the recipe uses {want}",
    "landmarks": "{have} landmarks, the recipe uses {want}",
    "seed": "seed {have}, the recipe uses objective.distance.seed {want}",
    "args": "reference options {have}, the recipe uses objective.distance.args {want}",
    "s_txt": "s_txt {have}, the recipe uses {want}",
}


def _legacy_settings(recipe: Any, header: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What a header without ``settings`` (imported, or an older rdm) records, as settings.

    Returns:
        ``(settings, unrecorded)``: comparable values, and the fields it leaves ``null``.
    """
    d, j, _ = _settings(recipe)
    out: dict[str, Any] = {"kind": header.get("kind"), "joint": header.get("beta") is not None}
    unrecorded: list[str] = []
    kernel = header.get("kernel")
    if isinstance(kernel, Mapping):  # every kernel kind records its kernel; kernel-free kinds do not
        out["kernel"] = kernel.get("name")
        try:  # the recipe's kernel at the recorded bandwidth, so defaults compare too
            from rdm_mmd.recipe_glue import build_kernel

            want = build_kernel(recipe, float(kernel.get("bandwidth") or 1.0)).describe()
            out["kernel_args"] = {k: v for k, v in kernel.items() if k not in ("name", "bandwidth")}
            out["_want_kernel_args"] = {k: v for k, v in want.items() if k not in ("name", "bandwidth")}
        except Exception:  # an unknown kernel name: the name comparison reports it
            pass
        if header.get("bandwidth_scale") is None:
            unrecorded.append("bandwidth_scale")
        else:
            out["bandwidth_scale"] = header["bandwidth_scale"]
    landmarks = header.get("landmarks_requested", header.get("landmarks"))
    if landmarks is not None:
        out["landmarks"] = landmarks
    if header.get("seed") is None:
        unrecorded.append("seed")
    else:
        out["seed"] = header["seed"]
    if j.enabled and j.s_txt is not None and header.get("s_txt") is not None:
        out["s_txt"] = header["s_txt"]
    if d.args:
        unrecorded.append("settings (objective.distance.args)")
    return out, unrecorded


def reference_problems(
    recipe: Any,
    encoder: str,
    header: Mapping[str, Any],
    part: Mapping[str, Any],
    dim: int | None,
    fingerprint: str | None = None,
) -> tuple[list[str], list[str]]:
    """Every way ``header`` (the training reference of ``encoder``) disagrees with the recipe.

    Args:
        recipe: the loaded recipe.
        encoder: the encoder the reference must belong to.
        header: the reference file's header.
        part: the encoder's manifest part (``{}`` for imported references).
        dim: the encoder's feature dim (``None``: unknown here).
        fingerprint: the live encoder's weights fingerprint (``None``: not compared).

    Returns:
        ``(problems, unrecorded)``: mismatches, and header fields that are ``null`` and so could
        not be compared.
    """
    joint = _settings(recipe)[1]
    out: list[str] = []
    missing = [k for k in REQUIRED if header.get(k) is None]
    if missing:
        return [f"its header lacks {', '.join(missing)} (not an rdm reference set)"], []
    if header.get("encoder") != encoder:
        out.append(f"it was built for encoder {header.get('encoder')!r}")
    want = reference_settings(recipe)
    if isinstance(header.get("settings"), Mapping):
        have, unrecorded = dict(header["settings"]), []
        if want["s_txt"] is None:  # null s_txt = the median of the tau table, recorded as a number
            have.pop("s_txt", None)
    else:
        have, unrecorded = _legacy_settings(recipe, header)
        want["kernel_args"] = have.pop("_want_kernel_args", want["kernel_args"])
        if want["s_txt"] is None:
            have.pop("s_txt", None)
    for key in ("kind", "kernel", "kernel_args", "bandwidth_scale", "landmarks", "seed", "args", "s_txt"):
        if key in have and not _same(have[key], want[key]):
            out.append(_LABELS[key].format(have=have[key], want=want[key]))
    if joint.enabled and not have.get("joint"):
        out.append("it is not a joint reference, the recipe has objective.joint.enabled")
    elif not joint.enabled and have.get("joint"):
        out.append("it is a joint reference, the recipe has objective.joint.enabled: false")
    bw = (part or {}).get("bandwidth") or {}
    if bw.get("sigma") is not None and not _same(header.get("bandwidth"), bw["sigma"]):
        out.append(f"bandwidth {header.get('bandwidth')}, the median heuristic gives {bw['sigma']}")
    if dim is not None:
        want_dim = dim + (int(header.get("d_txt") or 0) if joint.enabled else 0)
        if int(header["dim"]) != want_dim:
            out.append(f"dim {header['dim']}, the encoder gives {want_dim}")
    want_fp = (part or {}).get("reference_source_fingerprint")
    if want_fp and header.get("source_fingerprint") != want_fp:
        out.append("its features are stale (the images, captions or encoder changed since it was built)")
    built_with = header.get("encoder_fingerprint") or (
        ((part or {}).get("splits") or {}).get("train", {}).get("encoder_fingerprint")
    )
    if built_with is None:
        unrecorded.append("encoder_fingerprint")
    elif fingerprint is not None and fingerprint != built_with:
        out.append("the encoder weights differ from the ones the references were extracted with")
    return out, unrecorded


def bank_problems(
    recipe: Any,
    encoder: str,
    split: str,
    header: Mapping[str, Any],
    part: Mapping[str, Any],
    dim: int | None,
    fingerprint: str | None = None,
) -> tuple[list[str], list[str]]:
    """Every way an evaluation bank's header disagrees with the recipe and the live encoder.

    Returns:
        ``(problems, unrecorded)`` as :func:`reference_problems`.
    """
    if header.get("encoder") != encoder:
        return [f"it holds features of encoder {header.get('encoder')!r}"], []
    out: list[str] = []
    unrecorded: list[str] = []
    if dim is not None and header.get("dim") is not None and int(header["dim"]) != dim:
        out.append(f"dim {header['dim']}, the encoder gives {dim}")
    recorded = ((part or {}).get("splits") or {}).get(split) or {}
    built_with = header.get("encoder_fingerprint") or recorded.get("encoder_fingerprint")
    if built_with is None:
        unrecorded.append("encoder_fingerprint")
    elif fingerprint is not None and fingerprint != built_with:
        out.append("the encoder weights differ from the ones the bank was extracted with")
    if recorded.get("features_fingerprint") and header.get("source_fingerprint") != recorded["features_fingerprint"]:
        out.append("it is stale (the images or the encoder changed since it was written)")
    if header.get("n_pool") is None:
        unrecorded.append("n_pool")
    elif header.get("n") is not None:
        want = min(int(recipe.references.eval_bank_size), int(header["n_pool"]))
        if int(header["n"]) != want:
            out.append(f"{header['n']} rows, references.eval_bank_size gives {want}")
    return out, unrecorded


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
        _, joint, balance = _settings(recipe)
        if balance.mode == "controller":
            problems.extend(_floor_problems(recipe, stale))
        if joint.enabled:
            problems.extend(_text_table_problems(recipe))
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


def _text_table_problems(recipe: Any) -> list[str]:
    """The generator's tau table must have one row per prompt of its pool, in order."""
    from rdm_references.text import generator_prompts, prompts_fingerprint

    joint = _settings(recipe)[1]
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


def _floor_problems(recipe: Any, stale: list[str]) -> list[str]:
    balance = _settings(recipe)[2]
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
