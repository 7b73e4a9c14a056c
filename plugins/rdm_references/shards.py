"""Feature shards: fixed row ranges of one (encoder, split), each its own atomic safetensors file.

A shard is finished exactly when its file exists with a header whose fingerprints match the
current items and encoder; a killed build therefore restarts at the first missing shard, and a
changed image invalidates only the shards whose rows changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import fingerprint_parts, load_tensors, read_meta, save_tensors
from rdm_core.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

SHARD_KIND = "feature_shard"


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of a split; ``index`` numbers the file."""

    index: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def plan_shards(n: int, size: int) -> list[Shard]:
    """Consecutive shards of ``size`` rows covering ``n`` rows (the last may be shorter)."""
    if size <= 0:
        raise ValueError(f"shard size must be positive, got {size}")
    return [Shard(k, start, min(start + size, n)) for k, start in enumerate(range(0, n, size))]


def shard_path(root: str | Path, encoder: str, split: str, index: int) -> Path:
    """``<root>/features/<encoder>/<split>/shard_00000.safetensors``."""
    return Path(root) / "features" / encoder / split / f"shard_{index:05d}.safetensors"


def shard_items_fingerprint(item_fps: list[str], shard: Shard) -> str:
    return fingerprint_parts(item_fps[shard.start : shard.stop])


def shard_is_done(path: Path, expect: dict[str, Any]) -> bool:
    """True when ``path`` holds a complete shard whose header matches every key of ``expect``."""
    if not path.is_file():
        return False
    try:
        meta = read_meta(path)
    except ArtifactError:
        return False  # truncated by a crash outside atomic_path (e.g. a copied tree): redo it
    return meta.get("kind") == SHARD_KIND and all(meta.get(k) == v for k, v in expect.items())


def write_shard(path: Path, features: Tensor, meta: dict[str, Any]) -> None:
    """Save one shard (fp32 features) atomically with its header."""
    save_tensors(
        path,
        {"features": features.float().contiguous()},
        {"kind": SHARD_KIND, "rows": int(features.shape[0]), "dim": int(features.shape[1]), **meta},
    )


def load_split_features(
    root: str | Path, encoder: str, split: str, shards: list[Shard], *, rebuild: str = "rdm reference build RECIPE"
) -> Tensor:
    """Concatenate the shards of one split into ``(n, dim)`` float32, each verified by its hash.

    Args:
        rebuild: the command that re-extracts a deleted shard (quoted in errors).

    Raises:
        ArtifactError: a shard is missing, corrupt (flipped bytes) or has the wrong number of rows.
    """
    import torch

    fix = f"delete it and re-run `{rebuild}` (only missing shards are extracted again)"
    parts = []
    for shard in shards:
        path = shard_path(root, encoder, split, shard.index)
        tensors, _ = load_tensors(path, fix=fix)
        feats = tensors.get("features")
        if feats is None or feats.shape[0] != len(shard):
            raise ArtifactError(f"{path} does not hold rows {shard.start}..{shard.stop}.", fix)
        parts.append(feats.float())
    return torch.cat(parts) if parts else torch.empty(0, 0)
