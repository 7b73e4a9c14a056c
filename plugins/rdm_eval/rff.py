"""MMD_r14: a random-Fourier-feature MMD ratio (the paper's secondary metric; docs/method.md).

Per encoder::

    phi(x) = sqrt(2/D) cos(x W + b),   W ~ N(0, sigma^-2) (d x D),  b ~ U[0, 2 pi),  D = 4096
    m(X)   = 1000 * || mean_i phi(x_i) - mu_r ||^2,   mu_r = mean phi(seeded random train subsample)
    r_e    = m(gen) / m(val)

The RFF draw uses its own seed (99999), independent of anything used in training. sigma is the
median heuristic (scale 1) of a SEEDED random train subsample, and mu_r averages a seeded random
train subsample. The authors averaged the FIRST 50,000 train rows instead (with class-sorted
paths, the first ~39 ImageNet classes); ``mean_rows="first"`` reproduces that rule for parity,
and a stored (imported) map and mu_r replace the draw altogether.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rdm_core.errors import NonFiniteError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

RFF_DIM = 4096
RFF_SEED = 99999
MEAN_SUBSAMPLE = 50000
SIGMA_SUBSAMPLE = 4096
SCALE = 1000.0
MEAN_ROWS = ("random", "first")


def median_bandwidth(x: Tensor, *, subsample: int = SIGMA_SUBSAMPLE, seed: int = RFF_SEED) -> float:
    """The median heuristic at scale 1 (:func:`rdm_core.numerics.median_bandwidth`, the rule every
    rdm bandwidth uses), refusing a degenerate train bank instead of flooring sigma."""
    from rdm_core.numerics import median_sq_distance

    sigma = math.sqrt(max(median_sq_distance(x, subsample=subsample, seed=seed), 0.0))
    if not math.isfinite(sigma) or sigma <= 0.0:
        raise NonFiniteError(
            f"the median pairwise distance of the train bank is {sigma}.",
            "the train bank is degenerate (identical rows?); rebuild it with `rdm reference build`",
        )
    return sigma


@dataclass
class RandomFourierFeatures:
    """The RFF map of a Gaussian kernel with bandwidth ``sigma``: ``k(x,y) ~ phi(x) . phi(y)``."""

    weight: Tensor  # (d, D), entries N(0, sigma^-2)
    bias: Tensor  # (D,), U[0, 2 pi)
    sigma: float

    @classmethod
    def draw(
        cls, dim: int, sigma: float, *, features: int = RFF_DIM, seed: int = RFF_SEED, device: Any = "cpu"
    ) -> RandomFourierFeatures:
        """Draw W then b from one CPU generator seeded ``seed`` (device-independent values)."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(dim, features, generator=gen, dtype=torch.float32) / sigma
        b = torch.rand(features, generator=gen, dtype=torch.float32) * (2.0 * math.pi)
        return cls(w.to(device), b.to(device), float(sigma))

    @property
    def num_features(self) -> int:
        return int(self.weight.shape[1])

    def mean_embedding(self, x: Tensor, chunk: int = 8192) -> Tensor:
        """``mean_i phi(x_i)`` as float64 ``(D,)``, accumulated in chunks (bounded memory)."""
        import torch

        if x.dim() != 2 or x.shape[1] != self.weight.shape[0]:
            raise ShapeError(
                f"RFF input has shape {tuple(x.shape)}, expected (N, {self.weight.shape[0]}).",
                "pass features of the encoder whose train bank defined this map",
            )
        total = torch.zeros(self.num_features, dtype=torch.float64, device=self.weight.device)
        for start in range(0, x.shape[0], chunk):
            block = x[start : start + chunk].to(device=self.weight.device, dtype=torch.float32)
            phi = torch.cos(block @ self.weight + self.bias)
            total += phi.sum(dim=0, dtype=torch.float64)
        return total * math.sqrt(2.0 / self.num_features) / x.shape[0]


def mmd_score(mean_x: Tensor, mu_r: Tensor) -> float:
    """``m = 1000 * ||mean phi(x) - mu_r||^2``."""
    return float(SCALE * (mean_x - mu_r).pow(2).sum())


@dataclass
class RffBank:
    """What MMD_r14 needs from one encoder's train bank: the map and ``mu_r``."""

    rff: RandomFourierFeatures
    mu_r: Tensor
    mean_rows: int

    @classmethod
    def from_train(
        cls,
        train: Tensor,
        *,
        features: int = RFF_DIM,
        seed: int = RFF_SEED,
        mean_subsample: int = MEAN_SUBSAMPLE,
        sigma_subsample: int = SIGMA_SUBSAMPLE,
        sigma: float | None = None,
        mean_rows: str = "random",
    ) -> RffBank:
        """Fit sigma (unless given), draw the map and average ``mean_subsample`` train rows.

        The sigma and mean subsamples use ``seed + 1`` and ``seed + 2`` so that neither equals
        the RFF draw's stream. ``mean_rows="first"`` averages the first rows instead of a seeded
        random subsample (the authors' rule, for reproducing their numbers).
        """
        if mean_rows not in MEAN_ROWS:
            raise ShapeError(f"mean_rows must be one of {MEAN_ROWS}, got {mean_rows!r}.", "use 'random' or 'first'")
        s = median_bandwidth(train, subsample=sigma_subsample, seed=seed + 1) if sigma is None else float(sigma)
        rff = RandomFourierFeatures.draw(int(train.shape[1]), s, features=features, seed=seed, device=train.device)
        from rdm_core.numerics import seeded_rows

        sub = train[:mean_subsample] if mean_rows == "first" else seeded_rows(train, mean_subsample, seed + 2)
        return cls(rff, rff.mean_embedding(sub), int(sub.shape[0]))

    @classmethod
    def from_stored(
        cls, stored: dict[str, Tensor], sigma: float, mean_rows: int | None = None, device: Any = "cpu"
    ) -> RffBank:
        """A bank whose map and ``mu_r`` were saved (an imported authors' bank): nothing is drawn.

        ``mean_rows`` is -1 when the file does not say how many train rows ``mu_r`` averages.
        """
        import torch

        rff = RandomFourierFeatures(stored["W"].to(device), stored["b"].to(device), float(sigma))
        mu_r = stored["mu_r"].to(device=device, dtype=torch.float64)
        return cls(rff, mu_r, -1 if mean_rows is None else int(mean_rows))


def mmd_rff_ratios(
    gen: Tensor, val: Tensor, train: Tensor, *, n: int | None = None, bank: RffBank | None = None, **bank_args: Any
) -> dict[str, float]:
    """One encoder's ``m(gen)``, ``m(val)`` and ratio, gen and val truncated to a common N.

    The biased mean embedding has an offset ~ (1 - E k)/N, so gen and val must share N for the
    ratio to read ~1 on real data. ``bank`` (a stored map) replaces the one drawn from ``train``.
    """
    for label, x in (("generated", gen), ("val", val)):
        if x.dim() != 2 or x.shape[1] != train.shape[1]:
            raise ShapeError(
                f"{label} features have shape {tuple(x.shape)} but the train bank has dim {train.shape[1]}.",
                "extract generated and bank features with the same encoder and variant",
            )
    common = min(int(gen.shape[0]), int(val.shape[0]), int(n) if n else 1 << 62)
    bank = bank if bank is not None else RffBank.from_train(train, **bank_args)
    m_gen = mmd_score(bank.rff.mean_embedding(gen[:common]), bank.mu_r)
    m_val = mmd_score(bank.rff.mean_embedding(val[:common]), bank.mu_r)
    ratio = m_gen / m_val if m_val > 0 and math.isfinite(m_gen) else float("nan")
    return {
        "m_gen": m_gen,
        "m_val": m_val,
        "ratio": ratio,
        "sigma": bank.rff.sigma,
        "n": common,
        "mean_rows": bank.mean_rows,
    }
