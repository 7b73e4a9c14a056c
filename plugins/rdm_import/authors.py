"""What the authors' files look like: encoder names, file-name patterns and the kind of each file.

Every importer reads the dictionary's keys to tell the kind; file names only supply the encoder
(and the split of pools and SW banks), because the names are not reliable: bundle names say
``_M4096`` whatever the landmark count is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdm_core.errors import ArtifactError, RecipeError

#: the authors' encoder name -> rdm's registry name (the 14-encoder panel; the names coincide)
ENCODER_NAMES: dict[str, str] = {
    name: name
    for name in (
        "inception",
        "convnext",
        "mae",
        "clip",
        "dinov3_l",
        "pe_core_l",
        "siglip2",
        "aimv2_huge",
        "webssl_dino_1b",
        "dreamsim",
        "dinov2",
        "siglip_v1",
        "cradiov3_l",
        "flux_vae",
    )
}

KINDS = ("nystrom", "joint", "rff_bank", "sw_bank", "pool", "sigma")

# key sets that identify each kind (a file may carry more keys than these)
_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("joint", frozenset({"Z", "alpha", "sigma", "k_rr", "beta", "s_txt", "d_img", "d_txt"})),
    ("nystrom", frozenset({"Z", "alpha", "sigma", "k_rr"})),
    ("rff_bank", frozenset({"W", "b", "mu_r", "sigma"})),
    ("pool", frozenset({"features", "n", "d_in"})),
    ("sw_bank", frozenset({"features", "n"})),
    ("sigma", frozenset({"sigma", "scale"})),
)

_SUFFIXES = re.compile(r"(_joint)?(_nystrom)?(_M\d+)?$")
_SPLIT = re.compile(r"^(?P<enc>.+)_(?P<split>train|val)$")


def detect_kind(obj: Any, path: Path) -> str:
    """The kind of an authors' dictionary from its keys.

    Raises:
        ArtifactError: not a dict, or keys that match no known kind.
    """
    if not isinstance(obj, Mapping):
        raise ArtifactError(
            f"{path} holds a {type(obj).__name__}, not one of the authors' dictionaries.",
            f"import bundles, banks, pools or sigma files ({', '.join(KINDS)})",
        )
    keys = set(obj)
    for kind, needed in _SIGNATURES:
        if needed <= keys:
            return kind
    raise ArtifactError(
        f"{path} has keys {sorted(keys)}, which match none of the authors' file kinds.",
        f"pass --kind ({', '.join(KINDS)}) if the file is one of them, or check the file",
    )


def encoder_from_name(path: Path, kind: str, override: str | None = None) -> str:
    """rdm's encoder name: ``override``, else the file stem without the kind's suffixes."""
    raw = override or name_parts(path, kind)[0]
    return ENCODER_NAMES.get(raw, raw)


def name_parts(path: Path, kind: str) -> tuple[str, str | None]:
    """``(encoder, split)`` from a file name: ``dinov2_train.pt``, ``clip_joint_M8192.pt``, ``mae.pt``."""
    stem = path.stem
    split = None
    if kind in ("pool", "sw_bank"):
        m = _SPLIT.match(stem)
        if m:
            stem, split = m.group("enc"), m.group("split")
    elif kind in ("nystrom", "joint"):
        stem = _SUFFIXES.sub("", stem)
    return stem, split


def split_from_name(path: Path, kind: str, override: str | None = None) -> str | None:
    if override:
        if override not in ("train", "val"):
            raise RecipeError(f"--split must be train or val, got {override!r}.", "pass --split train or --split val")
        return override
    return name_parts(path, kind)[1]


def scalar(obj: Mapping[str, Any], key: str) -> Any:
    """A stored number as a Python scalar (0-d tensors included), or ``None`` when absent."""
    import torch

    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value
