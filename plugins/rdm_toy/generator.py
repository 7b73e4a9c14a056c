"""The ``digits-mlp`` generator: a small one-step noise -> image network for the CPU demo.

An MLP maps standard-normal noise to an 8x8 grey image (sigmoid, so values are in ``[0, 1]``),
which is upsampled bilinearly to ``resolution`` exactly as the ``digits`` source upsamples the
real digits, and replicated to three channels. Generated and real images therefore live in the
same image family, and the network only has to learn the 64 native pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_core.seeding import seeded_init
from rdm_toy.data import NATIVE, upsample


class DigitsMLP(nn.Module):
    """noise ``(B, noise_dim)`` -> images ``(B, 3, R, R)`` in ``[0, 1]``.

    Args:
        noise_dim: length of the noise vector.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        resolution: output side length.
        base: side length of the image the MLP produces before upsampling.
    """

    def __init__(
        self, noise_dim: int = 32, hidden: int = 256, depth: int = 2, resolution: int = 16, base: int = NATIVE
    ) -> None:
        super().__init__()
        if min(noise_dim, hidden, depth, base) < 1 or resolution < base:
            raise RecipeError(
                f"digits-mlp got noise_dim={noise_dim}, hidden={hidden}, depth={depth}, base={base}, "
                f"resolution={resolution}.",
                "use positive sizes with resolution >= base",
            )
        self.noise_dim, self.resolution, self.base = noise_dim, resolution, base
        layers: list[nn.Module] = []
        width = noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, base * base))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: Tensor) -> Tensor:
        grey = torch.sigmoid(self.net(noise.reshape(noise.shape[0], -1)))
        grey = upsample(grey.view(-1, 1, self.base, self.base), self.resolution)
        return grey.expand(-1, 3, -1, -1)


class DigitsMLPGenerator:
    """Unconditional one-step generator (:class:`rdm_core.interfaces.Generator`).

    Args:
        noise_dim: length of the noise vector (``noise_shape() == (noise_dim,)``).
        hidden: hidden width.
        depth: hidden layers.
        resolution: output side length (match the ``digits`` source).
        base: native side length before upsampling (8 = the digits' own size).
        seed: seed of the deterministic initialisation.
    """

    name = "digits-mlp"

    def __init__(
        self,
        noise_dim: int = 32,
        hidden: int = 256,
        depth: int = 2,
        resolution: int = 16,
        base: int = NATIVE,
        seed: int = 0,
    ) -> None:
        self.args: dict[str, Any] = dict(
            noise_dim=noise_dim, hidden=hidden, depth=depth, resolution=resolution, base=base, seed=seed
        )
        with seeded_init(seed=seed):
            self.module = DigitsMLP(noise_dim, hidden, depth, resolution, base)

    def noise_shape(self) -> tuple[int, ...]:
        return (self.module.noise_dim,)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """Unconditional: nothing to draw (``rng`` is left untouched)."""
        return Conditions(inputs=None)

    def generate(self, noise: Tensor, conditions: Conditions | None = None) -> Tensor:
        """Differentiable one-step sample ``(B, 3, R, R)`` in ``[0, 1]``."""
        if noise.dim() != 2 or noise.shape[1] != self.module.noise_dim:
            raise ShapeError(
                f"digits-mlp expects noise of shape (B, {self.module.noise_dim}), got {tuple(noise.shape)}.",
                "draw noise with shape (B, *generator.noise_shape())",
            )
        param = next(self.module.parameters())
        return self.module(noise.to(device=param.device, dtype=param.dtype))

    def sample(self, n: int, seed: int = 0, batch_size: int = 1024) -> Tensor:
        """``n`` samples without gradients from seeded noise (for quick looks and tests)."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                out.append(self.generate(torch.randn(b, *self.noise_shape(), generator=gen)))
        return torch.cat(out).cpu()

    def trainable_module(self) -> nn.Module:
        return self.module

    def load_weights(self, path: str, format: str = "auto") -> None:
        """Load a ``.safetensors`` file, an rdm checkpoint directory or a run directory."""
        if format not in ("auto", "rdm", "safetensors"):
            raise RecipeError(
                f"digits-mlp cannot read weights format {format!r}.", "use format 'auto' (rdm safetensors)"
            )
        from rdm_core.checkpoints import resolve_model_file

        file = resolve_model_file(path)
        state, _ = load_tensors(file)
        try:
            result = self.module.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches raise even with strict=False
            raise ArtifactError(
                f"{file} does not match digits-mlp{self.args}: {str(exc).splitlines()[-1].strip()}",
                "use the generator args the weights were trained with",
            ) from None
        if result.missing_keys or result.unexpected_keys:
            raise ArtifactError(
                f"{file} does not match digits-mlp{self.args}: missing {result.missing_keys[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}.",
                "use the generator args the weights were trained with",
            )

    def save_weights(self, path: str, format: str = "rdm") -> None:
        """Write the weights as safetensors with the generator args in the header (atomic)."""
        if format not in ("rdm", "safetensors"):
            raise RecipeError(f"digits-mlp cannot write weights format {format!r}.", "use format 'rdm'")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, self.module.state_dict(), {"generator": self.name, "args": self.args})


def digits_mlp(
    noise_dim: int = 32, hidden: int = 256, depth: int = 2, resolution: int = 16, base: int = NATIVE, seed: int = 0
) -> DigitsMLPGenerator:
    """Factory registered as generator ``digits-mlp``."""
    return DigitsMLPGenerator(
        noise_dim=noise_dim, hidden=hidden, depth=depth, resolution=resolution, base=base, seed=seed
    )
