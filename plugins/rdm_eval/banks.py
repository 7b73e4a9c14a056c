"""Reading the real-image evaluation banks and writing/reading generated-feature files.

Eval banks are written by ``rdm reference build``:
``<references.dir>/eval/<encoder>_{train,val}.safetensors`` with tensor ``features`` (n, d)
float32 and a JSON header (encoder, n, seed, ...). Generated features are cached by ``rdm eval``
in one file, one tensor per encoder, so a render can be re-scored without the generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

FEATURES_KIND = "eval_features"
BATTERY_CACHE_KIND = "battery_features"  # rdm_core.battery.Battery.extract caches: same layout
BANK_SPLITS = ("train", "val")
REEXTRACT = "delete it and extract the features again with `rdm eval RECIPE --checkpoint C` (or --images DIR)"
REBUILD_BANKS = (
    "delete it and rebuild the eval banks with `rdm reference build RECIPE` (only what is missing is recomputed)"
)


def bank_path(ref_dir: str | os.PathLike[str], encoder: str, split: str) -> Path:
    """``<ref_dir>/eval/<encoder>_<split>.safetensors`` (split ``rff``: the stored RFF map)."""
    if split == "rff":
        return Path(ref_dir) / "eval" / f"{encoder}_rff.safetensors"
    if split not in BANK_SPLITS:
        raise ValueError(f"split must be one of {BANK_SPLITS}, got {split!r}")
    return Path(ref_dir) / "eval" / f"{encoder}_{split}.safetensors"


@dataclass
class EvalBank:
    """One encoder's real features: the train bank (the anchor) and the held-out val bank."""

    encoder: str
    train: Tensor
    val: Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    #: a stored RFF map ``{"W", "b", "mu_r"}`` (+ ``meta["rff"]``) for MMD_r14, e.g. an imported one
    rff: dict[str, Tensor] | None = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def _read_bank(path: Path, encoder: str) -> tuple[Tensor, dict[str, Any]]:
    if not path.exists():
        raise ArtifactError(
            f"eval bank {path} is missing (encoder {encoder!r}).",
            "build the eval banks with `rdm reference build RECIPE` (they go to <references.dir>/eval/)",
        )
    tensors, meta = load_tensors(path, fix=REBUILD_BANKS)
    if "features" not in tensors:
        raise ArtifactError(
            f"{path} has no tensor 'features' (found {sorted(tensors)}).",
            "rebuild the eval banks with `rdm reference build RECIPE`",
        )
    feats = tensors["features"]
    if feats.dim() != 2 or feats.shape[0] < 2:
        raise ShapeError(
            f"{path}: 'features' has shape {tuple(feats.shape)}, expected (n >= 2, d).",
            "rebuild the eval banks with `rdm reference build RECIPE`",
        )
    named = meta.get("encoder")
    if named is not None and named != encoder:
        raise ArtifactError(
            f"{path} holds features of encoder {named!r}, not {encoder!r}.",
            "rebuild the eval banks, or fix references.dir",
        )
    return feats.float(), meta


def load_bank(ref_dir: str | os.PathLike[str], encoder: str) -> EvalBank:
    """Load one encoder's train and val banks; dimensions must agree."""
    train, meta_t = _read_bank(bank_path(ref_dir, encoder, "train"), encoder)
    val, meta_v = _read_bank(bank_path(ref_dir, encoder, "val"), encoder)
    if train.shape[1] != val.shape[1]:
        raise ShapeError(
            f"eval banks of {encoder!r} disagree: train dim {train.shape[1]}, val dim {val.shape[1]}.",
            "rebuild both banks with the same encoder variant (`rdm reference build RECIPE`)",
        )
    bank = EvalBank(encoder, train, val, {"train": meta_t, "val": meta_v})
    rff_file = bank_path(ref_dir, encoder, "rff")
    if rff_file.exists():
        bank.rff, bank.meta["rff"] = _read_rff(rff_file, encoder, train.shape[1])
    return bank


def _read_rff(path: Path, encoder: str, dim: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A stored RFF map (``rdm reference import`` of an authors' bank): ``W`` (d, D), ``b``, ``mu_r`` (D,)."""
    tensors, meta = load_tensors(path, fix="delete it and re-import it with `rdm reference import`")
    missing = [k for k in ("W", "b", "mu_r") if k not in tensors]
    if missing or meta.get("sigma") is None:
        raise ArtifactError(
            f"{path} is not an RFF bank (missing {', '.join(missing) or 'sigma'}).",
            "re-import it with `rdm reference import`, or delete it to draw the map from the train bank",
        )
    w, b, mu = tensors["W"], tensors["b"], tensors["mu_r"]
    if w.dim() != 2 or w.shape[0] != dim or b.shape != (w.shape[1],) or mu.shape != (w.shape[1],):
        raise ShapeError(
            f"{path}: W {tuple(w.shape)}, b {tuple(b.shape)}, mu_r {tuple(mu.shape)} do not fit features of dim {dim}.",
            "the RFF bank belongs to another encoder or variant; re-import the right one",
        )
    if meta.get("encoder") not in (None, encoder):
        raise ArtifactError(f"{path} holds the RFF bank of {meta.get('encoder')!r}, not {encoder!r}.", "fix the file")
    return {"W": w.float(), "b": b.float(), "mu_r": mu.float()}, meta


def load_banks(ref_dir: str | os.PathLike[str], encoders: list[str]) -> dict[str, EvalBank]:
    return {name: load_bank(ref_dir, name) for name in encoders}


def save_features(path: str | os.PathLike[str], features: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Cache generated features: one tensor per encoder, ``meta`` in the header."""
    n = {int(t.shape[0]) for t in features.values()}
    save_tensors(
        path,
        {k: v.float() for k, v in features.items()},
        {"kind": FEATURES_KIND, "encoders": list(features), "n": max(n) if n else 0, **meta},
    )


def load_features(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a features file written by :func:`save_features`, or a directory of
    ``<encoder>.safetensors`` files holding a ``features`` tensor each."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        if not files:
            raise ArtifactError(
                f"{p} contains no .safetensors feature files.",
                "pass a features file written by `rdm eval` or a folder of <encoder>.safetensors",
            )
        out: dict[str, Tensor] = {}
        for f in files:
            tensors, _ = load_tensors(f, fix=REEXTRACT)
            if "features" not in tensors:
                raise ArtifactError(
                    f"{f} has no tensor 'features'.", "save each encoder's (N, d) features as 'features'"
                )
            out[f.stem] = tensors["features"].float()
        return out, {"kind": FEATURES_KIND, "source": str(p)}
    tensors, meta = load_tensors(p, fix=REEXTRACT)
    if meta.get("kind") not in (None, FEATURES_KIND, BATTERY_CACHE_KIND):
        raise ArtifactError(
            f"{p} is a {meta.get('kind')!r} file, not generated features.",
            "pass the features.safetensors that `rdm eval` wrote, or a folder of per-encoder files",
        )
    return {k: v.float() for k, v in tensors.items()}, meta


def select_features(features: dict[str, Tensor], encoders: list[str], source: str) -> dict[str, Tensor]:
    """The recipe's encoders from a features dict; a clear error for any missing one."""
    missing = [e for e in encoders if e not in features]
    if missing:
        raise ArtifactError(
            f"{source} has no features for encoder(s) {', '.join(missing)} (it has {', '.join(sorted(features))}).",
            "re-run `rdm eval` with --checkpoint or --images to extract them, or restrict the recipe's encoders",
        )
    return {e: features[e] for e in encoders}
