"""Tiny generator, encoders and a Nystrom-style MMD loss for the GradCache tests.

Written independently of rdm_mmd so that the algorithm is checked against a brute-force float64
reference that shares no code with the trainer's loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rdm_core.interfaces import Conditions
from rdm_core.seeding import seeded_init
from rdm_gradcache.gradcache import Chunk

NOISE = 6
RES = 6
CLASSES = 5


class TinyGenerator(nn.Module):
    """noise (B, 6) + class ids -> (B, 3, 6, 6) in [0, 1]; optional dropout."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, 8)
        self.fc1 = nn.Linear(NOISE + 8, 16)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(16, 3 * RES * RES)

    def forward(self, noise: Tensor, ids: Tensor) -> Tensor:
        h = torch.tanh(self.fc1(torch.cat([noise, self.embed(ids).to(noise.dtype)], dim=1)))
        return torch.sigmoid(self.fc2(self.drop(h))).view(-1, 3, RES, RES)


class TinyEncoderA(nn.Module):
    """Flatten + linear + tanh -> (B, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * RES * RES, 5)
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return torch.tanh(self.fc(images.flatten(1)))


class TinyEncoderB(nn.Module):
    """Conv + average pool -> (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        return torch.relu(self.conv(images)).mean(dim=(2, 3)) * 3.0


def gaussian(x: Tensor, y: Tensor, sigma: float) -> Tensor:
    d2 = (x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2 * x @ y.T).clamp_min(0)
    return torch.exp(-d2 / (2 * sigma**2))


class NystromRef:
    """Landmarks Z, coefficients alpha and k_rr of a reference pool (float64 solve)."""

    def __init__(self, pool: Tensor, m: int, sigma: float) -> None:
        pool = pool.double()
        self.sigma = sigma
        self.z = pool[:m]
        kzz = gaussian(self.z, self.z, sigma) + 1e-6 * torch.eye(m, dtype=torch.float64)
        mu = gaussian(self.z, pool, sigma).mean(1)
        self.alpha = torch.linalg.solve(kzz, mu)
        self.k_rr = float(gaussian(pool, pool, sigma).mean())

    def distance(self, g: Tensor) -> Tensor:
        z, alpha = self.z.to(g.dtype), self.alpha.to(g.dtype)
        k_gg = gaussian(g, g, self.sigma).mean()
        k_gr = (gaussian(g, z, self.sigma) @ alpha).mean()
        return k_gg - 2 * k_gr + self.k_rr


def make_setup(dropout: float = 0.0, dtype: torch.dtype = torch.float64, seed: int = 0):
    """(generator, encoders, references) with fixed random weights."""
    with seeded_init(seed=seed):
        gen = TinyGenerator(dropout).to(dtype)
        encoders = {"a": TinyEncoderA().to(dtype), "b": TinyEncoderB().to(dtype)}
        real = torch.rand(64, 3, RES, RES).to(dtype)  # same values for every dtype
    refs = {}
    with torch.no_grad():
        for name, enc in encoders.items():
            feats = enc(real)
            refs[name] = NystromRef(feats, 16, float(torch.cdist(feats, feats).median()))
    return gen, encoders, refs


def make_chunks(k: int, b: int, dtype: torch.dtype = torch.float64, seed: int = 1) -> list[Chunk]:
    rng = torch.Generator().manual_seed(seed)
    return [
        Chunk(
            torch.randn(b, NOISE, generator=rng, dtype=dtype),
            Conditions(inputs=torch.randint(0, CLASSES, (b,), generator=rng)),
        )
        for _ in range(k)
    ]


def make_encode(gen: TinyGenerator, encoders: dict[str, nn.Module], autocast: bool = False):
    def encode(chunk: Chunk) -> dict[str, Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            images = gen(chunk.noise, chunk.conditions.inputs)
            return {name: enc(images).float() if autocast else enc(images) for name, enc in encoders.items()}

    return encode


def make_loss(refs: dict[str, NystromRef], weights: dict[str, float] | None = None, eps: float = 1e-7):
    """Self-normalised weighted sum of the per-encoder Nystrom MMD (docs/method.md, "Combining encoders")."""

    def loss_fn(feats: dict[str, Tensor]):
        raw = {name: refs[name].distance(f) for name, f in feats.items()}
        total = sum((weights or {}).get(n, 1.0) * r / (r.detach().abs() + eps) for n, r in raw.items())
        return total, {"raw": {n: float(r.detach()) for n, r in raw.items()}}

    return loss_fn


def full_batch_grads(gen: TinyGenerator, encode, loss_fn, chunks: list[Chunk]) -> tuple[float, list[Tensor]]:
    """The plain reference: one graph over the whole batch (chunk-wise forward, same RNG order)."""
    gen.zero_grad(set_to_none=True)
    per_chunk = [encode(c) for c in chunks]
    feats = {n: torch.cat([f[n] for f in per_chunk]) for n in per_chunk[0]}
    loss, _ = loss_fn(feats)
    loss.backward()
    grads = [p.grad.detach().clone() for p in gen.parameters()]
    gen.zero_grad(set_to_none=True)
    return float(loss.detach()), grads
