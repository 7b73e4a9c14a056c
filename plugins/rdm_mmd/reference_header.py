"""The JSON header of a reference file: what it records, and refusing one that is not what a caller expects.

Every reference kind writes the same shared keys (encoder and its spec, kernel and bandwidth,
seed, ``n``, source fingerprint, joint image-text settings) plus its own; ``docs/references.md``
lists them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core import __version__ as rdm_version
from rdm_core.artifacts import fingerprint_tensor
from rdm_core.errors import RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.interfaces import EncoderSpec, Kernel

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

JOINT_KEYS = ("beta", "s_txt", "d_img", "d_txt")


def encoder_fields(encoder: Any) -> tuple[str | None, dict[str, Any] | None]:
    """``(name, spec dict or None)`` from an EncoderSpec, its dict, a name, or None."""
    if encoder is None:
        return None, None
    if isinstance(encoder, str):
        return encoder, None
    if isinstance(encoder, EncoderSpec):
        spec = encoder.to_dict()
        return spec.get("name"), spec
    if isinstance(encoder, Mapping):
        spec = dict(encoder)
        return spec.get("name"), spec
    raise RecipeError(
        f"encoder must be a name, an EncoderSpec or its dict, got {type(encoder).__name__}.",
        "pass encoder='dinov2' or encoder=spec",
    )


def make_header(
    kind: str,
    features: Tensor,
    kernel: Any,
    *,
    encoder: Any = None,
    bandwidth_scale: float | None = None,
    landmarks: int | None = None,
    seed: int = 0,
    source_fingerprint: str | None = None,
    k_rr: float | None = None,
    joint: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON header shared by every kind (kind-specific keys go in ``extra``)."""
    name, spec = encoder_fields(encoder)
    dim = int(features.shape[1])
    header: dict[str, Any] = {
        "kind": kind,
        "encoder": name,
        "encoder_spec": spec,
        "dim": dim,
        "kernel": kernel.describe() if kernel is not None else None,
        "bandwidth": float(kernel.bandwidth) if kernel is not None else None,
        "bandwidth_scale": None if bandwidth_scale is None else float(bandwidth_scale),
        "landmarks": None if landmarks is None else int(landmarks),
        "seed": int(seed),
        "n": int(features.shape[0]),
        "source_fingerprint": source_fingerprint or fingerprint_tensor(features),
        "rdm_version": rdm_version,
        "k_rr": None if k_rr is None else float(k_rr),
        "joint": joint is not None,
    }
    for key in JOINT_KEYS:
        header[key] = None
    if joint is not None:
        missing = [k for k in JOINT_KEYS if joint.get(k) is None]
        if missing:
            raise RecipeError(
                f"joint reference options miss {', '.join(missing)}.",
                "pass joint={'beta': .., 's_txt': .., 'd_img': .., 'd_txt': ..}",
            )
        if int(joint["d_img"]) + int(joint["d_txt"]) != dim:
            raise ShapeError(
                f"joint features have dim {dim} but d_img + d_txt = {joint['d_img']} + {joint['d_txt']}.",
                "build joint features with rdm_mmd.joint.joint_features(phi, tau, beta)",
            )
        header.update(
            {
                "beta": float(joint["beta"]),
                "s_txt": float(joint["s_txt"]),
                "d_img": int(joint["d_img"]),
                "d_txt": int(joint["d_txt"]),
            }
        )
    header.update(dict(extra or {}))
    return header


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(have) == bool(want)
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(float(have), float(want), rel_tol=1e-6, abs_tol=1e-12)
    return have == want


def _kernel_matches(have: Any, want: Any) -> bool:
    if have is None:
        return want is None
    if isinstance(want, str):
        return have.get("name") == want
    if isinstance(want, Kernel):
        want = want.describe()
    if isinstance(want, Mapping):
        return all(_same(have.get(k), v) for k, v in want.items())
    return False


def check_expect(header: Mapping[str, Any], expect: Mapping[str, Any] | None, path: str | Path) -> None:
    """Refuse a reference whose header differs from what the caller expects.

    Raises:
        ReferenceMismatchError: naming the key, both values and the rebuild command.
    """
    if not expect:
        return
    encoder = expect.get("encoder") or header.get("encoder") or "NAME"
    fix = f"rebuild it: `rdm reference build RECIPE --encoders {encoder}` (or point the recipe at the right file)"
    for key, want in expect.items():
        if want is None:
            continue
        have = header.get(key)
        ok = _kernel_matches(have, want) if key == "kernel" else _same(have, want)
        if not ok:
            shown = (
                have.get("name") if key == "kernel" and isinstance(have, Mapping) and isinstance(want, str) else have
            )
            raise ReferenceMismatchError(f"{path}: reference set has {key}={shown!r} but {want!r} is expected.", fix)
