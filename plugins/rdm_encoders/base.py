"""The frozen-encoder base class: differentiable on-device preprocessing, precision policy, pooling hook.

Every encoder of the panel is a :class:`FrozenEncoder`. ``forward`` takes ``[0,1]`` NCHW images of
any size, resizes and normalises them on their device (autograd-safe, never under ``no_grad``), runs
the backbone under bf16 autocast (or fp32 with autocast off for Inception) and returns ``(B, dim)``
float32 features. Subclasses implement :meth:`embed` only.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import EncoderSpec, Preprocessing
from rdm_core.precision import encoder_compute_dtype


def tf1_bilinear_resize(x: Tensor, size: int) -> Tensor:
    """TensorFlow-1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    Source coordinate = ``out_index * (in / out)``, clamped at the last pixel; no antialiasing.
    Like TF1, the scale and coordinates are float32 and each row is interpolated along x before
    the two rows are blended along y (the rounding then matches the TF graph). Written with index
    gathers so that gradients reach ``x``.
    """

    def axis(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        scale = torch.tensor(n_in / size, dtype=torch.float32, device=x.device)
        src = torch.arange(size, device=x.device, dtype=torch.float32) * scale
        lo = src.floor()
        frac = (src - lo).to(x.dtype)
        lo_i = lo.long().clamp(max=n_in - 1)
        hi_i = (lo_i + 1).clamp(max=n_in - 1)
        return lo_i, hi_i, frac

    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)

    def along_x(rows: Tensor) -> Tensor:
        left, right = rows.index_select(-1, x0), rows.index_select(-1, x1)
        return left + (right - left) * fx

    top, bottom = along_x(x.index_select(-2, y0)), along_x(x.index_select(-2, y1))
    return top + (bottom - top) * fy.view(-1, 1)


def preprocess(images: Tensor, pre: Preprocessing) -> Tensor:
    """Resize ``[0,1]`` images to ``pre.resolution`` and normalise them, differentiably.

    No resize happens when the images already have the target size (as in the authors' code).
    """
    r = pre.resolution
    x = images
    if x.shape[-2:] != (r, r):
        if pre.interpolation == "tf1_bilinear":
            x = tf1_bilinear_resize(x, r)
        else:
            x = F.interpolate(x, size=(r, r), mode=pre.interpolation, align_corners=False, antialias=pre.antialias)
    if pre.mean is not None and pre.std is not None:
        mean = torch.tensor(pre.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(pre.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x - mean) / std
    elif tuple(pre.value_range) == (-1.0, 1.0):
        x = x * 2.0 - 1.0
    return x


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x - mean) / std`` per channel (used by DreamSim's per-branch normalisation)."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


class FrozenEncoder(nn.Module):
    """Base of every panel encoder.

    Args:
        spec: the encoder's spec (for tiny variants already ``with_variant("tiny", dim)``).
        backbone: the library model; frozen here (``eval()`` + ``requires_grad_(False)``).
    """

    def __init__(self, spec: EncoderSpec, backbone: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Always stays in eval mode: frozen encoders never use dropout or batch statistics."""
        return super().train(False)

    def precision_context(self, device_type: str, dtype: torch.dtype = torch.float32) -> AbstractContextManager[None]:
        """bf16 autocast on the input's device, or autocast disabled for fp32 encoders and in
        float64 exactness runs (``dtype`` float64)."""
        if self.spec.precision == "fp32" or dtype == torch.float64:
            return torch.autocast(device_type=device_type, enabled=False)
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def preprocess(self, images: Tensor) -> Tensor:
        """Resize + normalise per the spec (override for encoders with their own scheme)."""
        return preprocess(images, self.spec.preprocessing)

    def embed(self, x: Tensor) -> Tensor:
        """Backbone + pooling on the preprocessed input; implemented by each encoder."""
        raise NotImplementedError(f"{type(self).__name__} must implement embed()")

    def forward(self, images: Tensor) -> Tensor:
        """``[0,1]`` images ``(B,3,H,W)`` -> ``(B, dim)`` float32 features (differentiable; float64
        when an ``fp64`` run has cast the encoder to float64)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(
                f"encoder {self.spec.name!r} expects (B,3,H,W) images in [0,1], got shape {tuple(images.shape)}.",
                "flatten video frames with rdm_core.interfaces.as_image_batch and pass RGB images",
            )
        dtype = encoder_compute_dtype(self)
        x = self.preprocess(images.to(dtype))
        with self.precision_context(images.device.type, dtype):
            feats = self.embed(x)
        return feats.to(dtype)


def resolve_pretrained(variant: str, weights: str | None, pretrained: bool | None, name: str) -> bool:
    """Whether to load weights: full loads by default, tiny only when a local file is given."""
    if variant not in ("full", "tiny"):
        raise RecipeError(f"encoder {name!r}: unknown variant {variant!r}.", "use variant 'full' or 'tiny'")
    if pretrained is None:
        return variant == "full" or weights is not None
    if not pretrained and weights is not None:
        raise RecipeError(
            f"encoder {name!r}: weights={weights!r} given together with pretrained=False.", "drop one of them"
        )
    return pretrained


def spec_for(spec: EncoderSpec, variant: str, dim: int) -> EncoderSpec:
    """The spec of a built encoder: tiny variants get their own dim; a full-size model whose
    loaded config gives another dim than the panel table keeps the real one, with a warning
    (the authors' code only warned on a mismatch)."""
    if variant == "tiny":
        return spec.with_variant("tiny", dim)
    if dim != spec.dim:
        warnings.warn(
            f"encoder {spec.name!r}: the loaded model gives {dim}-d features, the panel table says "
            f"{spec.dim}; using {dim}.",
            stacklevel=3,
        )
        return spec.with_variant("full", dim)
    return spec
