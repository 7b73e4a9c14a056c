"""One authors' dictionary -> one rdm file, kind by kind.

Each converter checks shapes against the scalars the file records, keeps every number the file
has, and sets to ``None`` what it does not record; the names of those fields are returned so the
caller can warn once per file.

| authors' kind | rdm file (under the output directory) |
|---|---|
| ``nystrom`` / ``joint`` bundle | ``<encoder>.safetensors`` (reference kind ``nystrom``) |
| ``rff_bank`` | ``eval/<encoder>_rff.safetensors`` (read by MMD_r14 instead of drawing a map) |
| ``sw_bank`` | ``eval/<encoder>_{train,val}.safetensors`` (the SW_r14 / MMD_r14 banks) |
| ``pool`` | ``features/<encoder>[_<split>].safetensors`` (``rdm reference build --features``) |
| ``sigma`` | ``bandwidth/<encoder>.json`` |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core import __version__ as rdm_version
from rdm_core.artifacts import save_tensors, write_json
from rdm_core.errors import ArtifactError, ShapeError
from rdm_import.authors import scalar

RFF_BANK_KIND = "rff_bank"
EVAL_BANK_KIND = "eval_bank"  # the layout rdm_references writes and rdm_eval reads


@dataclass
class Converted:
    """What one conversion wrote."""

    kind: str
    encoder: str
    path: Path
    missing: list[str] = field(default_factory=list)
    summary: str = ""
    source: str = ""


def _tensor(obj: Mapping[str, Any], key: str, source: Path, ndim: int) -> Tensor:
    t = obj.get(key)
    if not isinstance(t, Tensor) or t.dim() != ndim:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ShapeError(
            f"{source}: {key!r} must be a {ndim}-d tensor, got {shape}.", "check that the file is complete"
        )
    if not t.is_floating_point():
        raise ArtifactError(f"{source}: {key!r} has dtype {t.dtype}, expected floats.", "check the file")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ArtifactError(f"{source}: {key!r} contains NaN or Inf.", "re-download the file")
    return t


def _agree(source: Path, what: str, recorded: Any, actual: int) -> int:
    if recorded is not None and int(recorded) != int(actual):
        raise ShapeError(
            f"{source}: the file records {what}={recorded} but its tensors have {actual}.",
            "the file is inconsistent; re-download it",
        )
    return int(actual)


def _number(obj: Mapping[str, Any], key: str, source: Path, *, positive: bool = False) -> float | None:
    value = scalar(obj, key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ArtifactError(f"{source}: {key!r} is {value!r}, not a finite number.", "check the file")
    if positive and float(value) <= 0:
        raise ArtifactError(f"{source}: {key!r} is {value}, expected > 0.", "check the file")
    return float(value)


def source_scalars(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Every non-tensor entry of the file, kept verbatim in the header (``source_keys``)."""
    out = {}
    for key, value in obj.items():
        if isinstance(value, Tensor):
            if value.numel() == 1:
                out[key] = value.item()
            continue
        out[key] = value
    return out


def encoder_spec(name: str) -> dict[str, Any] | None:
    """The registered spec of ``name`` (for the header), or ``None`` for an unknown encoder."""
    from rdm_core.errors import UnknownNameError
    from rdm_core.interfaces import EncoderSpec
    from rdm_core.plugins import registry

    try:
        spec = registry("encoders").spec(name)
    except UnknownNameError:
        return None
    return spec.to_dict() if isinstance(spec, EncoderSpec) else None


def _base_header(kind: str, encoder: str, origin: Mapping[str, str], obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "encoder": encoder,
        "encoder_spec": encoder_spec(encoder),
        "rdm_version": rdm_version,
        "imported_from": dict(origin),
        "source_keys": source_scalars(obj),
        "source_fingerprint": origin["sha256"][:16],
    }


# -- Nystrom and joint bundles ----------------------------------------------------------------

# what an rdm nystrom header holds that the authors' bundles never record
_NEVER_RECORDED = ("seed", "n", "fit_n", "kmeans_iters", "krr_n", "krr_rows", "jitter")


def convert_bundle(
    obj: Mapping[str, Any], source: Path, encoder: str, origin: Mapping[str, str], out: Path
) -> Converted:
    """A Nystrom (or joint) bundle -> an rdm ``nystrom`` reference set."""
    from rdm_mmd.nystrom import NystromReference
    from rdm_mmd.reference_header import JOINT_KEYS

    z = _tensor(obj, "Z", source, 2)
    alpha = _tensor(obj, "alpha", source, 1)
    m = _agree(source, "M", scalar(obj, "M"), z.shape[0])
    if alpha.shape[0] != m:
        raise ShapeError(f"{source}: alpha has {alpha.shape[0]} entries for {m} landmarks.", "re-download the file")
    dim = _agree(source, "d_in", scalar(obj, "d_in"), z.shape[1])
    sigma = _number(obj, "sigma", source, positive=True)
    k_rr = _number(obj, "k_rr", source)
    scale = _number(obj, "sigma_scale", source, positive=True)
    missing = [k for k in ("M", "d_in", "sigma_scale") if obj.get(k) is None]
    joint = all(obj.get(k) is not None for k in JOINT_KEYS)
    if joint:
        d_img, d_txt = int(scalar(obj, "d_img")), int(scalar(obj, "d_txt"))
        if d_img + d_txt != dim:
            raise ShapeError(
                f"{source}: d_img + d_txt = {d_img} + {d_txt} but the landmarks have dim {dim}.",
                "re-download the file",
            )
    if obj.get("pool_path") is None:  # joint bundles never record it
        missing.append("pool_path")
    header = _base_header("nystrom", encoder, origin, obj)
    header.update(
        {
            "dim": dim,
            "kernel": {"name": "gaussian", "bandwidth": sigma},
            "bandwidth": sigma,
            "bandwidth_scale": scale,
            "landmarks": m,
            "k_rr": k_rr,
            "joint": joint,
            "pool_path": scalar(obj, "pool_path"),
            **{k: None for k in _NEVER_RECORDED},
            **{k: None for k in JOINT_KEYS},
        }
    )
    if joint:
        header.update(
            {
                "beta": _number(obj, "beta", source, positive=True),
                "s_txt": _number(obj, "s_txt", source, positive=True),
                "d_img": int(scalar(obj, "d_img")),
                "d_txt": int(scalar(obj, "d_txt")),
            }
        )
    missing.extend(_NEVER_RECORDED)
    ref = NystromReference({"landmarks": z, "alpha": alpha}, header)  # validates shapes and finiteness
    ref.save(out)
    kind = "joint" if joint else "nystrom"
    return Converted(kind, encoder, out, missing, f"M={m}, dim={dim}, sigma={sigma:.6g}, k_rr={k_rr:.6g}")


# -- evaluation banks -------------------------------------------------------------------------


def convert_rff_bank(
    obj: Mapping[str, Any], source: Path, encoder: str, origin: Mapping[str, str], out: Path
) -> Converted:
    """An RFF evaluation bank ``{W (d, D), b (D,), mu_r (D,), sigma, D, d_in, seed}``."""
    w = _tensor(obj, "W", source, 2)
    b = _tensor(obj, "b", source, 1)
    mu_r = _tensor(obj, "mu_r", source, 1)
    big_d = _agree(source, "D", scalar(obj, "D"), w.shape[1])
    dim = _agree(source, "d_in", scalar(obj, "d_in"), w.shape[0])
    if b.shape[0] != big_d or mu_r.shape[0] != big_d:
        raise ShapeError(
            f"{source}: W has {big_d} features but b has {b.shape[0]} and mu_r {mu_r.shape[0]}.",
            "re-download the file",
        )
    missing = [k for k in ("D", "d_in", "seed") if obj.get(k) is None] + ["mean_n"]
    header = _base_header(RFF_BANK_KIND, encoder, origin, obj)
    seed = scalar(obj, "seed")
    header.update(
        {
            "dim": dim,
            "num_features": big_d,
            "sigma": _number(obj, "sigma", source, positive=True),
            "seed": None if seed is None else int(seed),
            "mean_n": None,
        }
    )
    save_tensors(out, {"W": w, "b": b, "mu_r": mu_r}, header)
    return Converted(RFF_BANK_KIND, encoder, out, missing, f"D={big_d}, dim={dim}, sigma={header['sigma']:.6g}")


def convert_rows(
    obj: Mapping[str, Any], source: Path, encoder: str, origin: Mapping[str, str], out: Path, kind: str
) -> Converted:
    """An SW bank ``{features, n}`` or a feature pool ``{features, n, d_in}``."""
    feats = _tensor(obj, "features", source, 2)
    n_recorded = scalar(obj, "n")
    if kind == "pool":
        _agree(source, "n", n_recorded, feats.shape[0])
        _agree(source, "d_in", scalar(obj, "d_in"), feats.shape[1])
    header = _base_header(EVAL_BANK_KIND if kind == "sw_bank" else "features", encoder, origin, obj)
    header.update({"n": int(feats.shape[0]), "dim": int(feats.shape[1])})
    missing: list[str] = []
    if kind == "sw_bank":
        # the bank's rows are a seeded random draw from a pool whose size the file does not say
        header.update({"n_pool": None, "seed": None})
        missing = ["n_pool", "seed", "indices"]
    save_tensors(out, {"features": feats}, header)
    return Converted(kind, encoder, out, missing, f"{feats.shape[0]} x {feats.shape[1]}")


def convert_sigma(
    obj: Mapping[str, Any], source: Path, encoder: str, origin: Mapping[str, str], out: Path
) -> Converted:
    """A bandwidth file ``{sigma, scale}`` (sigma = scale x median) -> JSON."""
    sigma = _number(obj, "sigma", source, positive=True)
    scale = _number(obj, "scale", source, positive=True)
    median = None if sigma is None or scale is None else sigma / scale
    write_json(
        out,
        {
            "kind": "bandwidth",
            "encoder": encoder,
            "sigma": sigma,
            "scale": scale,
            "median": median,
            "subsample": None,
            "seed": None,
            "imported_from": dict(origin),
            "rdm_version": rdm_version,
        },
    )
    return Converted("sigma", encoder, out, ["subsample", "seed"], f"sigma={sigma:.6g} (scale {scale})")
