"""What ``rdm eval`` scores: the generator to render with, and the features of each input kind.

A checkpoint or the base weights are rendered and encoded (the features cached beside the
report), an image folder is encoded, a features file is read back, and the real val bank can be
split in half against itself. The encoders are checked against the reference banks before
anything is extracted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import Generator
    from rdm_eval.banks import EvalBank


def real_val_split(banks: dict[str, EvalBank], seed: int) -> tuple[dict[str, Tensor], dict[str, EvalBank]]:
    """Score real data against itself: a seeded half split of each val bank, the first half as
    "generated", the second half as the floor (both then share the common N)."""
    import torch

    from rdm_eval.banks import EvalBank

    generated, floors = {}, {}
    for enc, bank in banks.items():
        perm = torch.randperm(bank.val.shape[0], generator=torch.Generator().manual_seed(seed))
        half = bank.val.shape[0] // 2
        generated[enc] = bank.val[perm[:half]]
        floors[enc] = EvalBank(enc, bank.train, bank.val[perm[half:]], bank.meta, bank.rff)
    return generated, floors


def build_generator_with(recipe: Any, checkpoint: str | None, device: str) -> Generator:
    """The recipe's generator with the checkpoint's weights (or the base weights when None)."""
    from rdm_core.checkpoints import load_generator_weights
    from rdm_core.recipe.assemble import build_generator

    generator = build_generator(recipe, device)
    if checkpoint is not None:
        try:
            load_generator_weights(checkpoint, generator)
        except RuntimeError as exc:  # torch's state-dict mismatch
            raise ArtifactError(
                f"checkpoint {checkpoint} does not fit generator {recipe.generator.name!r}: {str(exc).splitlines()[0]}",
                "evaluate with the recipe the checkpoint was trained with",
            ) from exc
    return generator


def generated_features(
    recipe: Any,
    encoders: list[str],
    source: dict[str, Any],
    device: str,
    out_dir: Path,
    generator: Generator | None,
    modules: dict[str, Any] | None = None,
    fingerprints: dict[str, str] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Generated features for every encoder, from the chosen source; rendered ones are cached.

    Args:
        modules: the built encoders (built here when ``None``).
        fingerprints: their weights fingerprints, recorded in the cached features file.
    """
    from rdm_core.battery import Battery
    from rdm_core.recipe.assemble import build_encoders
    from rdm_eval.banks import load_features, save_features, select_features
    from rdm_eval.render import folder_batches, image_files, render_batches

    if source["kind"] == "features":
        feats, meta = load_features(source["path"])
        return select_features(feats, encoders, source["path"]), {"features_meta": meta}
    batch = int(recipe.eval.batch_size)
    modules = modules if modules is not None else build_encoders(recipe, "all", device)
    battery = Battery(modules, chunk_size=batch, device=device)
    if source["kind"] == "images":
        files = image_files(source["path"])
        feats = battery.extract(
            folder_batches(files, batch, int(recipe.references.resolution)), description=f"encoding {len(files)} images"
        )
        meta = {"source": "images", "path": str(source["path"]), "n": len(files)}
    else:
        assert generator is not None
        n, seed = int(recipe.eval.num_samples), int(recipe.eval.seed)
        precision = str(recipe.train.precision)
        renders = (
            imgs for imgs, _ in render_batches(generator, n, batch, seed=seed, device=device, precision=precision)
        )
        feats = battery.extract(renders, description=f"render + encode {n} samples")
        meta = {"source": source["kind"], "checkpoint": source.get("path"), "n": n, "seed": seed}
    path = out_dir / "features.safetensors"
    save_features(
        path,
        feats,
        {
            **meta,
            "held_out": list(recipe.encoders.held_out),
            "dims": {k: int(v.shape[1]) for k, v in feats.items()},
            "encoder_fingerprints": dict(fingerprints or {}),
        },
    )
    return feats, {**meta, "features_file": str(path)}


def checked_encoders(
    recipe: Any, kind: str, features: str | None, device: str
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """Build the battery (inputs that extract features) and refuse banks that do not fit it.

    Returns:
        ``(encoders, weights fingerprints)``; ``(None, fingerprints recorded in the features file
        or None)`` for inputs that extract nothing.
    """
    from rdm_core.recipe.assemble import build_encoders
    from rdm_references.check import check_references
    from rdm_references.stages import encoder_fingerprint

    if kind in ("checkpoint", "base", "images"):
        modules = build_encoders(recipe, "all", device)
        fingerprints = {n: encoder_fingerprint(m) for n, m in modules.items()}
        check_references(recipe, fingerprints, stage="eval")  # feature dims are checked against the banks
        return modules, fingerprints
    recorded = None
    if kind == "features" and features is not None and Path(features).is_file():
        from rdm_core.artifacts import read_meta

        recorded = read_meta(features).get("encoder_fingerprints") or None
    check_references(recipe, recorded, stage="eval")
    return None, recorded
