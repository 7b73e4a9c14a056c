"""Feature files: safetensors with one ``features`` tensor (n, d) and a JSON header."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError


def save_features(path: str | Path, features: Tensor, meta: Mapping[str, Any] | None = None) -> None:
    """Write ``features`` (n, d) with ``meta`` (e.g. encoder, encoder_spec, source_fingerprint)."""
    if features.dim() != 2:
        raise ArtifactError(
            f"features must be (n, d), got shape {tuple(features.shape)}.",
            "pool the encoder outputs to one vector per image",
        )
    save_tensors(
        path,
        {"features": features},
        {"kind": "features", "n": int(features.shape[0]), "dim": int(features.shape[1]), **dict(meta or {})},
    )


def load_features(path: str | Path, device: str = "cpu") -> tuple[Tensor, dict[str, Any]]:
    """``(features, meta)`` from a feature file.

    Raises:
        ArtifactError: missing/corrupt file or no ``features`` tensor.
    """
    tensors, meta = load_tensors(path, device=device)
    if "features" not in tensors or tensors["features"].dim() != 2:
        raise ArtifactError(
            f"{path} has no (n, d) 'features' tensor (found: {', '.join(tensors) or 'none'}).",
            "write feature files with rdm_mmd.features_io.save_features",
        )
    return tensors["features"], meta
