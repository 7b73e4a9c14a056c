"""FLUX.2 latent geometry: 2x2 patchify, token packing, 4-axis position ids, BN (de)normalisation.

The DiT denoises in the *patchified, BN-normalised* space: ``(B, 128, H/16, W/16)`` for a 32-channel
VAE latent of ``(B, 32, H/8, W/8)``. There is no scaling/shift factor (unlike FLUX.1); the VAE's
``bn`` running statistics are the normalisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def patchify(latents: Tensor) -> Tensor:
    """``(B, C, 2h, 2w)`` -> ``(B, 4C, h, w)``; channel order ``c, dy, dx`` (diffusers/BFL)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unpatchify(latents: Tensor) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, 4C, h, w)`` -> ``(B, C, 2h, 2w)``."""
    b, c4, h, w = latents.shape
    x = latents.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c4 // 4, h * 2, w * 2)


def pack(latents: Tensor) -> Tensor:
    """``(B, C, h, w)`` -> ``(B, h*w, C)`` tokens, row-major."""
    b, c, h, w = latents.shape
    return latents.reshape(b, c, h * w).permute(0, 2, 1)


def unpack(tokens: Tensor, height: int, width: int) -> Tensor:
    """``(B, h*w, C)`` row-major tokens -> ``(B, C, h, w)``."""
    b, n, c = tokens.shape
    if n != height * width:
        raise ValueError(f"{n} tokens cannot form a {height}x{width} latent grid")
    return tokens.permute(0, 2, 1).reshape(b, c, height, width)


def latent_ids(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """``(h*w, 4)`` ids ``(t=0, row, col, l=0)``; 2-D because the transformer uses one row set."""
    rows = torch.arange(height, device=device).repeat_interleave(width)
    cols = torch.arange(width, device=device).repeat(height)
    zeros = torch.zeros_like(rows)
    return torch.stack([zeros, rows, cols, zeros], dim=1)


def text_ids(length: int, device: torch.device | str = "cpu") -> Tensor:
    """``(L, 4)`` ids ``(t=0, h=0, w=0, l=0..L-1)`` for the context tokens."""
    pos = torch.arange(length, device=device)
    zeros = torch.zeros_like(pos)
    return torch.stack([zeros, zeros, zeros, pos], dim=1)


def bn_stats(vae: nn.Module, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` of the VAE's latent BatchNorm as ``(1, 128, 1, 1)`` tensors."""
    bn = vae.bn
    mean = bn.running_mean.view(1, -1, 1, 1).to(device=device, dtype=dtype)
    std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(device=device, dtype=dtype)
    return mean, std


def denormalize(latents: Tensor, vae: nn.Module) -> Tensor:
    """BN-normalised patchified latents -> raw patchified latents (``x * std + mean``)."""
    mean, std = bn_stats(vae, latents.dtype, latents.device)
    return latents * std + mean


def normalize(latents: Tensor, vae: nn.Module) -> Tensor:
    """Raw patchified latents -> the BN-normalised space the DiT works in."""
    mean, std = bn_stats(vae, latents.dtype, latents.device)
    return (latents - mean) / std


def decode_to_unit(latents: Tensor, vae: nn.Module) -> Tensor:
    """Normalised patchified latents ``(B, 128, h, w)`` -> images in ``[0, 1]``, differentiably.

    The VAE is frozen by its owner but this is deliberately *not* under ``no_grad``: gradients must
    reach the latents (and the DiT) through the decoder.
    """
    raw = unpatchify(denormalize(latents, vae))
    vae_dtype = next(vae.parameters()).dtype
    image = vae.decode(raw.to(vae_dtype), return_dict=False)[0]
    # bf16 decodes come back as float32 images; an fp64 run (exactness tests) stays fp64
    image = image if image.dtype == torch.float64 else image.float()
    return (image * 0.5 + 0.5).clamp(0.0, 1.0)
