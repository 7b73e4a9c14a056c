"""The joint image-text feature ``[phi(x) | beta * tau(c)]`` (the paper's eq. 4; docs/method.md).

Under one Gaussian kernel of bandwidth ``sigma_img`` the kernel of the concatenation factorises
into an image Gaussian times a text Gaussian of bandwidth ``sigma_img / beta = s_txt``. Both
sides are built here in fp32 (the authors' code cast only the generated text block to bf16).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.numerics import median_bandwidth


def joint_features(phi: Tensor, tau_rows: Tensor, beta: float) -> Tensor:
    """``[phi | beta * tau]`` in fp32; the gradient flows through ``phi`` only.

    Args:
        phi: ``(N, d_img)`` image features (any float dtype).
        tau_rows: ``(N, d_txt)`` text features of each sample's caption (rows already selected).
        beta: text-block scale ``sigma_img / s_txt``.
    """
    if phi.dim() != 2 or tau_rows.dim() != 2 or phi.shape[0] != tau_rows.shape[0]:
        raise ShapeError(
            f"joint features need (N, d_img) and (N, d_txt) with the same N, got "
            f"{tuple(phi.shape)} and {tuple(tau_rows.shape)}.",
            "index the text table with the batch's caption_ids",
        )
    text = tau_rows.detach().to(device=phi.device, dtype=torch.float32) * float(beta)
    return torch.cat([phi.float(), text], dim=1)


def text_bandwidth(tau: Tensor, subsample: int = 2000, seed: int = 0) -> float:
    """Median-heuristic text scale ``s_txt`` of the tau table (seeded subsample)."""
    return median_bandwidth(tau, scale=1.0, subsample=subsample, seed=seed)


def joint_beta(sigma_img: float, s_txt: float) -> float:
    """``beta = sigma_img / s_txt``: the text factor becomes a Gaussian of bandwidth ``s_txt``."""
    if not (math.isfinite(s_txt) and s_txt > 0):
        raise RecipeError(
            f"s_txt must be a positive number, got {s_txt!r}.",
            "set objective.joint.s_txt (1.0 for the headline recipe) or null for the median heuristic",
        )
    if not (math.isfinite(sigma_img) and sigma_img > 0):
        raise RecipeError(f"sigma_img must be positive, got {sigma_img!r}.", "check the image bandwidth")
    return float(sigma_img) / float(s_txt)
