"""The per-encoder steps after feature extraction: bandwidth, training reference, eval banks, floors.

Each step is a pure function of its inputs plus a ``build_key`` (a fingerprint of those inputs
and the settings that shape the output). The pipeline records the key and the output file's
content hash in the manifest and skips a step whose key and file are unchanged, which is what
makes re-running a finished build cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import fingerprint_file, fingerprint_parts, fingerprint_tensor, save_tensors
from rdm_core.errors import RecipeError
from rdm_core.plugins import registry
from rdm_core.recipe.assemble import plain

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import Encoder

EVAL_BANK_KIND = "eval_bank"


def mmd_settings(recipe: Any) -> Any:
    """The ``mmd`` objective's settings: what shapes a training reference. Imported on use, not
    with this module: `rdm eval` imports it for :func:`encoder_fingerprint` alone."""
    from rdm_mmd.config import mmd_settings as settings_of

    return settings_of(recipe)


def encoder_fingerprint(encoder: Encoder) -> str:
    """Identity of an encoder: its spec, class and every weight and buffer.

    Hashing the state dict (rather than trusting a weights path) catches swapped files and
    unseeded random initialisation alike; at full size it costs about a second per GB.
    """
    parts = [type(encoder).__qualname__, json.dumps(encoder.spec.to_dict(), sort_keys=True, default=str)]
    for name, tensor in sorted(encoder.state_dict().items()):
        parts.append(f"{name}={fingerprint_tensor(tensor)}")
    return fingerprint_parts(parts)


def output_up_to_date(record: dict[str, Any] | None, path: Path, build_key: str) -> bool:
    """True when ``path`` exists, its content hash matches ``record`` and so does the key."""
    if not record or record.get("build_key") != build_key or not path.is_file():
        return False
    return record.get("file_fingerprint") == fingerprint_file(path)


def output_record(path: Path, build_key: str, root: Path) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
        "build_key": build_key,
        "file_fingerprint": fingerprint_file(path),
    }


# -- bandwidth --------------------------------------------------------------------------------


def bandwidth(features: Tensor, recipe: Any) -> dict[str, float]:
    """Median-heuristic bandwidth of the training pool (docs/method.md), seeded.

    Returns:
        ``{"median": scale-1 bandwidth, "scale": recipe scale, "sigma": scale x median,
        "subsample": ..., "seed": ...}``. The scale-1 median is kept for the evaluation RFF
        bank (sigma = 1.0 x median) whatever the training scale is.
    """
    from rdm_core.numerics import median_bandwidth

    d = mmd_settings(recipe).distance
    median = median_bandwidth(features, scale=1.0, subsample=int(d.bandwidth_subsample), seed=int(d.seed))
    return {
        "median": float(median),
        "scale": float(d.bandwidth_scale),
        "sigma": float(d.bandwidth_scale) * float(median),
        "subsample": int(d.bandwidth_subsample),
        "seed": int(d.seed),
    }


# -- training reference -----------------------------------------------------------------------


def reference_settings(recipe: Any) -> dict[str, Any]:
    """Everything in the recipe that shapes a training reference set."""
    settings = mmd_settings(recipe)
    d, j = settings.distance, settings.joint
    return {
        "kind": d.reference,
        "kernel": d.kernel,
        "kernel_args": plain(d.kernel_args),
        "bandwidth_scale": float(d.bandwidth_scale),
        "landmarks": int(d.landmarks),
        "seed": int(d.seed),
        "args": plain(d.args),
        "joint": bool(j.enabled),
        "s_txt": j.s_txt if j.enabled else None,
    }


def build_training_reference(
    recipe: Any,
    encoder: str,
    features: Tensor,
    sigma: float,
    source_fingerprint: str,
    path: Path,
    tau: Tensor | None = None,
    *,
    spec: Any = None,
    weights_fingerprint: str | None = None,
) -> Any:
    """Build and save the training reference set of one encoder (kind ``objective.distance.reference``).

    For joint recipes the pool is ``[phi | beta * tau]`` with ``beta = sigma_img / s_txt`` (s_txt
    from the recipe, or the median of the tau table when ``objective.joint.s_txt`` is null), and beta and
    s_txt go into the header. The header also records the encoder's spec and weights
    fingerprint and the recipe's :func:`reference_settings`, which is what
    :func:`rdm_references.check.check_references` compares with a recipe.

    Args:
        spec: the encoder's :class:`~rdm_core.interfaces.EncoderSpec` (or its dict).
        weights_fingerprint: :func:`encoder_fingerprint` of the encoder that extracted ``features``.
    """
    settings = mmd_settings(recipe)
    d = settings.distance
    cls = registry("references").resolve(d.reference)
    wanted: dict[str, Any] = dict(
        landmarks=int(d.landmarks),
        seed=int(d.seed),
        encoder=spec if spec is not None else encoder,
        bandwidth_scale=float(d.bandwidth_scale),
        source_fingerprint=source_fingerprint,
        bandwidth_subsample=int(d.bandwidth_subsample),
    )
    pool = features
    if settings.joint.enabled:
        if tau is None or tau.shape[0] != features.shape[0]:
            raise RecipeError(
                f"joint reference for {encoder!r}: the tau table does not match the pool rows.",
                "give the reference source captions (jsonl or teacher with prompts)",
            )
        beta, s_txt = joint_scale(recipe, sigma, tau)
        pool = joint_pool(features, tau, beta)
        wanted["joint"] = {"beta": beta, "s_txt": s_txt, "d_img": int(features.shape[1]), "d_txt": int(tau.shape[1])}
    # Only the options a reference kind declares: an exact pool has no landmarks, for instance.
    declared = _named_parameters(cls.build)
    kwargs = {k: v for k, v in wanted.items() if k in declared}
    if settings.joint.enabled and "joint" not in kwargs:
        raise RecipeError(
            f"reference kind {d.reference!r} cannot hold joint image-text features.",
            "use objective.distance.reference: nystrom for joint recipes",
        )
    kwargs.update(plain(d.args) or {})
    from rdm_mmd.recipe_glue import build_kernel

    kernel = build_kernel(recipe, sigma)
    ref = cls.build(pool, kernel, **kwargs)
    ref.header.update(encoder=encoder, encoder_fingerprint=weights_fingerprint, settings=reference_settings(recipe))
    ref.save(str(path))
    return ref


def _named_parameters(fn: Any) -> set[str]:
    import inspect

    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def joint_scale(recipe: Any, sigma: float, tau: Tensor) -> tuple[float, float]:
    """``(beta, s_txt)`` for the joint feature (docs/method.md)."""
    from rdm_mmd import joint

    settings = mmd_settings(recipe)
    s_txt = settings.joint.s_txt
    if s_txt is None:
        s_txt = float(joint.text_bandwidth(tau, seed=int(settings.distance.seed)))
    return float(joint.joint_beta(sigma, float(s_txt))), float(s_txt)


def joint_pool(features: Tensor, tau: Tensor, beta: float) -> Tensor:
    from rdm_mmd import joint

    return joint.joint_features(features, tau, beta)


# -- evaluation banks -------------------------------------------------------------------------


def bank_indices(n: int, size: int, seed: int) -> Tensor:
    """A seeded random subsample of at most ``size`` of ``n`` rows, in ascending row order."""
    import torch

    if n <= size:
        return torch.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[:size].sort().values


def write_eval_bank(path: Path, features: Tensor, size: int, seed: int, meta: dict[str, Any]) -> None:
    """Save ``features[indices]`` (tensor ``features``) and the row ``indices`` used."""
    idx = bank_indices(features.shape[0], int(size), seed)
    save_tensors(
        path,
        {"features": features.index_select(0, idx).float(), "indices": idx.long()},
        {
            "kind": EVAL_BANK_KIND,
            "n": int(idx.numel()),
            "n_pool": int(features.shape[0]),
            "dim": int(features.shape[1]),
            "seed": int(seed),
            **meta,
        },
    )


# -- floors -----------------------------------------------------------------------------------


def floor(recipe: Any, reference_path: Path, val_features: Tensor, tau_val: Tensor | None) -> float:
    """The controller floor b_e: the training loss of real validation features at N = rollout."""
    from rdm_core.recipe.assemble import load_reference
    from rdm_mmd.floors import compute_floor

    settings = mmd_settings(recipe)
    ref = load_reference(reference_path)
    feats = val_features
    if settings.joint.enabled:
        if tau_val is None:
            raise RecipeError(
                "joint floors need captions for the validation images.",
                "give references.val captions (jsonl) or drop objective.balance.mode: controller",
            )
        beta = ref.header.get("beta")
        if beta is None:
            raise RecipeError(
                f"{reference_path} is not a joint reference (no beta).",
                "rebuild references with objective.joint.enabled: true",
            )
        feats = joint_pool(val_features, tau_val, float(beta))
    return float(
        compute_floor(
            ref,
            feats,
            n=int(recipe.train.rollout),
            draws=int(settings.balance.floor_draws),
            seed=int(settings.distance.seed),
        )
    )
