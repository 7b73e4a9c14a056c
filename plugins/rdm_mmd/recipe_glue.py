"""Recipe-driven building and loading of training references, from the ``mmd`` objective's settings
(``objective.distance`` / ``objective.joint``); used by the reference pipeline and the tests."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from rdm_core.capabilities import ConfigurableReferenceSet
from rdm_core.errors import RecipeError
from rdm_core.recipe.assemble import load_reference, plain, reference_path
from rdm_mmd.config import mmd_settings


def build_kernel(recipe: Any, bandwidth: float) -> Any:
    """The kernel ``objective.distance`` names, at ``bandwidth``, with its ``kernel_args``."""
    from rdm_core.plugins import registry

    d = mmd_settings(recipe).distance
    return registry("kernels").create(str(d.kernel), bandwidth=bandwidth, **(plain(d.kernel_args) or {}))


def expected_header(recipe: Any, encoder: str, dim: int | None = None) -> dict[str, Any]:
    """What the recipe's ``objective.distance`` / ``objective.joint`` require of ``encoder``'s reference.

    Args:
        recipe: a loaded recipe.
        encoder: encoder name.
        dim: the encoder's feature dimension (joint: image dim + text dim), when known.
    """
    settings = mmd_settings(recipe, "checking a reference set")
    d = settings.distance
    expect: dict[str, Any] = {"encoder": encoder, "kind": str(d.reference), "joint": bool(settings.joint.enabled)}
    if d.reference in ("nystrom", "exact", "rff"):
        expect["kernel"] = str(d.kernel)
        expect["bandwidth_scale"] = float(d.bandwidth_scale)
    if d.reference == "nystrom":
        expect["landmarks"] = int(d.landmarks)
    if dim is not None:
        expect["dim"] = int(dim)
    return expect


def load_training_reference(recipe: Any, encoder: str, *, dim: int | None = None, device: Any = "cpu") -> Any:
    """``<references.dir>/<encoder>.safetensors``, checked against the recipe, with its runtime
    options (``gen_chunk``) set from ``objective.distance``.

    Raises:
        ArtifactError: the file is missing or corrupt.
        ReferenceMismatchError: it was built for another encoder, kind, kernel, scale, M or dim.
    """
    ref = load_reference(reference_path(recipe, encoder), expect=expected_header(recipe, encoder, dim), device=device)
    if isinstance(ref, ConfigurableReferenceSet) and "gen_chunk" in ref.runtime_options():
        ref.configure(gen_chunk=int(mmd_settings(recipe).distance.gen_chunk))
    return ref


def build_reference_from_recipe(
    recipe: Any,
    encoder: Any,
    features: Tensor,
    *,
    tau_rows: Tensor | None = None,
    source_fingerprint: str | None = None,
) -> Any:
    """Build ``encoder``'s training reference from its pool features as the recipe says.

    With ``objective.joint.enabled`` the image bandwidth ``sigma_img`` is the median heuristic of
    the IMAGE features x ``bandwidth_scale``; ``s_txt`` is ``joint.s_txt`` (or the text median when null);
    the reference is built on ``[phi | beta tau]`` under a kernel of bandwidth ``sigma_img`` and
    records ``beta, s_txt, d_img, d_txt``.

    Args:
        recipe: a loaded recipe.
        encoder: encoder name or EncoderSpec (stored in the header).
        features: ``(n, d)`` pool features.
        tau_rows: ``(n, d_txt)`` text features of each pool image's caption (joint only).
        source_fingerprint: identity of the source images.
    """
    from rdm_core.numerics import median_bandwidth
    from rdm_core.plugins import registry
    from rdm_mmd.joint import joint_beta, joint_features, text_bandwidth

    settings = mmd_settings(recipe)
    d = settings.distance
    cls = registry("references").resolve(str(d.reference))
    kernel: Any = str(d.kernel)
    joint = None
    if settings.joint.enabled:
        if tau_rows is None or tau_rows.shape[0] != features.shape[0]:
            raise RecipeError(
                "objective.joint.enabled needs one text row (tau) per reference image.",
                "pass tau_rows aligned with the pool features (caption of each image)",
            )
        sigma_img = median_bandwidth(features, scale=d.bandwidth_scale, subsample=d.bandwidth_subsample, seed=d.seed)
        s_txt = settings.joint.s_txt
        if s_txt is None:
            s_txt = text_bandwidth(tau_rows, seed=d.seed)
        beta = joint_beta(sigma_img, float(s_txt))
        joint = {"beta": beta, "s_txt": float(s_txt), "d_img": int(features.shape[1]), "d_txt": int(tau_rows.shape[1])}
        features = joint_features(features, tau_rows, beta)
        if d.reference in ("nystrom", "exact", "rff"):
            kernel = build_kernel(recipe, sigma_img)
    return cls.build(
        features,
        kernel,
        landmarks=int(d.landmarks),
        seed=int(d.seed),
        encoder=encoder,
        bandwidth_scale=float(d.bandwidth_scale),
        source_fingerprint=source_fingerprint,
        joint=joint,
        kernel_args=plain(d.kernel_args) or {},
        bandwidth_subsample=int(d.bandwidth_subsample),
        **(plain(d.args) or {}),
    )
