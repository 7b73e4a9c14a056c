"""How the header of a training reference or an evaluation bank disagrees with a recipe.

:func:`rdm_references.check.check_references` reads the headers and reports what these
functions find; :func:`objective_settings` is the part of the recipe they compare with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rdm_references.stages import reference_settings

REQUIRED = ("kind", "encoder", "dim")


def objective_settings(recipe: Any) -> tuple[Any, Any, Any]:
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
    d, j, _ = objective_settings(recipe)
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
    joint = objective_settings(recipe)[1]
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
