"""Small networks behind the toy encoders. Each maps grey ``(B, 1, R, R)`` images to features.

They differ in kind on purpose, as the paper's battery does: supervised classifiers (two
architectures), an autoencoder, random convolutional features, fixed Gabor filters, raw pixels
and a whitened PCA projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Supervised classifier; ``features`` is the 64-d penultimate layer (SiLU, smooth gradients)."""

    def __init__(self, resolution: int = 16, dim: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            # pool early: the digits are natively 8x8, so full-resolution wide layers buy nothing
            nn.Conv2d(1, 16, 3, padding=1),
            nn.SiLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.SiLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.SiLU(),
        )
        self.proj = nn.Linear(64 * (resolution // 4) ** 2, dim)
        self.head = nn.Linear(dim, classes)

    def features(self, x: Tensor) -> Tensor:
        return F.silu(self.proj(self.body(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class WideCNN(nn.Module):
    """A second classifier of another design (5x5 kernels, max-pooling, ReLU, 128-d features)."""

    def __init__(self, resolution: int = 16, dim: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 24, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.proj = nn.Linear(48 * (resolution // 4) ** 2, dim)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(dim, classes)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.proj(self.body(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x)))


class ConvAutoencoder(nn.Module):
    """Reconstruction-trained autoencoder; ``features`` is the 32-d bottleneck code."""

    def __init__(self, resolution: int = 16, dim: int = 32) -> None:
        super().__init__()
        side = resolution // 4
        self.side = side
        self.enc = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        self.code = nn.Linear(32 * side * side, dim)
        self.expand = nn.Linear(dim, 32 * side * side)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),
        )

    def features(self, x: Tensor) -> Tensor:
        return self.code(self.enc(x).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.expand(self.features(x))).view(-1, 32, self.side, self.side)
        return torch.sigmoid(self.dec(h))


class RandomConv(nn.Module):
    """Untrained convolutional features: two seeded random conv layers, tanh, pooled to 2x2."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, channels, 3, padding=1, stride=2)

    def features(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.conv1(x * 2.0 - 1.0))
        h = torch.tanh(self.conv2(h))
        return F.adaptive_avg_pool2d(h, 2).flatten(1)


def gabor_bank(size: int = 5, orientations: int = 4, wavelengths: tuple[float, ...] = (3.0, 6.0)) -> Tensor:
    """Even and odd Gabor filters ``(2 * orientations * len(wavelengths), 1, size, size)``, zero-mean."""
    half = (size - 1) / 2.0
    coords = torch.arange(size, dtype=torch.float64) - half
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    filters = []
    for lam in wavelengths:
        sigma = 0.5 * lam
        for k in range(orientations):
            theta = math.pi * k / orientations
            xr = xx * math.cos(theta) + yy * math.sin(theta)
            yr = -xx * math.sin(theta) + yy * math.cos(theta)
            envelope = torch.exp(-(xr**2 + yr**2) / (2 * sigma**2))
            for phase in (0.0, math.pi / 2):
                f = envelope * torch.cos(2 * math.pi * xr / lam + phase)
                f = f - f.mean()  # no response to flat regions
                filters.append(f / f.norm())
    return torch.stack(filters).unsqueeze(1).float()


class GaborBank(nn.Module):
    """Fixed oriented filters -> energy (squared response) pooled on a 4x4 grid (HOG-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filters", gabor_bank())

    def features(self, x: Tensor) -> Tensor:
        r = F.conv2d(x, self.filters, padding=self.filters.shape[-1] // 2)
        return F.adaptive_avg_pool2d(r * r, 4).flatten(1)


class Pixels(nn.Module):
    """Raw grey pixels, area-downsampled to ``side x side`` (no parameters)."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.side = side

    def features(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.side).flatten(1)


class WhitenedPCA(nn.Module):
    """Projection on the top principal components of the training pixels, whitened."""

    def __init__(self, in_dim: int = 256, dim: int = 24) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("components", torch.zeros(dim, in_dim))  # rows scaled by 1/sqrt(eigenvalue)

    def fit(self, pixels: Tensor, eps: float = 1e-6) -> WhitenedPCA:
        """Fit on ``(n, in_dim)`` pixel rows (float64 SVD; deterministic)."""
        x = pixels.double()
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        k = self.components.shape[0]
        var = s[:k] ** 2 / max(x.shape[0] - 1, 1)
        # fix each component's sign (largest |entry| positive) so refits are bit-stable
        signs = torch.sign(vh[:k].gather(1, vh[:k].abs().argmax(1, keepdim=True)))
        comps = vh[:k] * signs / torch.sqrt(var + eps).unsqueeze(1)
        self.mean.copy_(mean.float())
        self.components.copy_(comps.float())
        return self

    def features(self, x: Tensor) -> Tensor:
        return (x.flatten(1) - self.mean) @ self.components.T
