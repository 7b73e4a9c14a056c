"""A one-step generator: standard-normal noise -> colour images in [0, 1], differentiably."""

from __future__ import annotations

import torch
from torch import nn

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.interfaces import Conditions


class ConvNet(nn.Module):
    """noise ``(B, noise_dim)`` -> ``(B, 3, resolution, resolution)`` in ``[0, 1]``."""

    def __init__(self, noise_dim: int, width: int, resolution: int) -> None:
        super().__init__()
        self.start = resolution // 4
        self.project = nn.Linear(noise_dim, width * self.start * self.start)
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, width, 3, padding=1),
            nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        x = self.project(noise).view(noise.shape[0], -1, self.start, self.start)
        return torch.sigmoid(self.body(x))  # the sigmoid keeps every pixel in [0, 1]


class ConvGenerator:
    """Unconditional, so there are no conditions to draw. Recipe arguments are the constructor's.

    rdm builds it under a seeded RNG (the same random init in every process), moves
    ``trainable_module()`` to the run's device and draws the noise; ``generate`` must be a pure
    function of the noise, the conditions and the parameters (training replays every chunk).
    """

    def __init__(self, noise_dim: int = 16, width: int = 32, resolution: int = 16) -> None:
        if resolution % 4 or min(noise_dim, width, resolution) < 1:
            raise RecipeError(
                f"example-conv got noise_dim={noise_dim}, width={width}, resolution={resolution}.",
                "use positive sizes and a resolution divisible by 4",
            )
        self.module = ConvNet(noise_dim, width, resolution)
        self.noise_dim = noise_dim

    def noise_shape(self) -> tuple[int, ...]:
        return (self.noise_dim,)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        return Conditions(inputs=None)

    def generate(self, noise: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        param = next(self.module.parameters())
        return self.module(noise.to(device=param.device, dtype=param.dtype))

    def trainable_module(self) -> nn.Module:
        return self.module

    def load_weights(self, path: str, format: str = "auto") -> None:
        """Base weights (``generator.weights``, ``rdm generate --weights``): strict, one-line errors."""
        tensors, _ = load_tensors(path)
        try:
            self.module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(
                f"{path} does not fit example-conv: {str(exc).splitlines()[0]}",
                "use the generator arguments the weights were saved with",
            ) from None

    def save_weights(self, path: str, format: str = "rdm") -> None:
        save_tensors(path, self.module.state_dict(), {"generator": "example-conv"})  # atomic
