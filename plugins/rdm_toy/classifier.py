"""A digit classifier fitted on the real train digits, to judge mode coverage of generated samples.

It is the full ``digits_cnn_wide`` network (a held-out encoder, so it never shaped the training
loss): the encoder exposes its penultimate features, the classifier also uses its head.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from rdm_core.errors import ShapeError
from rdm_toy.data import NUM_CLASSES
from rdm_toy.specs import RESOLUTION

CLASSIFIER_ENCODER = "digits_cnn_wide"


@functools.lru_cache(maxsize=4)
def load_classifier(seed: int = 1, cache_dir: str | None = None, weights: str | None = None) -> torch.nn.Module:
    """The trained ``digits_cnn_wide`` network (cached weights, or a seconds-long fit)."""
    from rdm_toy.encoders import build_toy_encoder

    return build_toy_encoder(CLASSIFIER_ENCODER, weights=weights, seed=seed, cache_dir=cache_dir).net


def _grey16(images: Tensor) -> Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ShapeError(
            f"the digit classifier expects (B, 3, H, W) images in [0,1], got {tuple(images.shape)}.",
            "pass generated or real image batches",
        )
    x = images.float()
    if x.shape[-2:] != (RESOLUTION, RESOLUTION):
        x = F.interpolate(
            x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False, antialias=x.shape[-1] > RESOLUTION
        )
    return x.mean(dim=1, keepdim=True)


def classify(images: Tensor, *, batch_size: int = 1024, classifier: torch.nn.Module | None = None) -> Tensor:
    """Predicted digit (int64, ``(B,)``) of every image."""
    net = classifier if classifier is not None else load_classifier()
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            out.append(net(_grey16(images[start : start + batch_size].cpu())).argmax(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def class_histogram(images: Tensor, *, classifier: torch.nn.Module | None = None) -> Tensor:
    """Fraction of ``images`` assigned to each digit class: float64 ``(10,)`` summing to 1."""
    if images.shape[0] == 0:
        raise ShapeError("class_histogram got an empty batch.", "pass at least one image")
    pred = classify(images, classifier=classifier)
    return torch.bincount(pred, minlength=NUM_CLASSES).double() / pred.numel()


def mode_coverage(images: Tensor, min_fraction: float = 0.05, *, classifier: torch.nn.Module | None = None) -> dict:
    """Whether every digit class has at least ``min_fraction`` of the samples.

    Returns:
        ``{"histogram": [10 floats], "min_fraction": float, "covered": bool, "missing": [classes]}``.
    """
    hist = class_histogram(images, classifier=classifier)
    missing = [c for c in range(NUM_CLASSES) if hist[c] < min_fraction]
    return {
        "histogram": [round(float(v), 4) for v in hist],
        "min_fraction": float(hist.min()),
        "covered": not missing,
        "missing": missing,
    }
