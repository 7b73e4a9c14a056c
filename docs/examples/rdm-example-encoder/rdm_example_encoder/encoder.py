"""A frozen, differentiable encoder with no weights: colour statistics at four scales."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdm_core.errors import RecipeError
from rdm_example_encoder.hooks import SPEC


class ColorStats(nn.Module):
    """``[0,1]`` images -> per-channel mean and std at 64, 32, 16 and 8 px (24 features).

    The resize to 64 px is the encoder's own preprocessing (what ``SPEC.preprocessing`` states);
    rdm hands over the images as they are. No ``no_grad``: gradients must reach the generator.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        feats = []
        for _ in range(4):
            feats += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
            x = F.avg_pool2d(x, 2)
        return torch.cat(feats, dim=1)


def build(variant: str = "full", weights: str | None = None) -> ColorStats:
    """The encoder has no weights, so both variants are the same function."""
    if weights is not None:
        raise RecipeError("color_stats has no weights.", "remove encoders.weights.color_stats from the recipe")
    return ColorStats()
