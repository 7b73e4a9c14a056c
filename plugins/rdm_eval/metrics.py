"""The feature-level metrics, SW_r14 and MMD_r14, as registered :class:`Metric` objects.

Both take generated features per encoder and the real eval banks, and return one ratio per
encoder (generated vs the real-val floor, ~1 for real data) plus their arithmetic mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.interfaces import MetricResult
from rdm_eval.sliced import NUM_PROJECTIONS, PROJECTION_CHUNK, PROJECTION_SEED, mean_ratio, safe_ratio

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_eval.banks import EvalBank


def _check_inputs(name: str, generated: Mapping[str, Tensor], banks: Mapping[str, EvalBank]) -> list[str]:
    missing = [e for e in banks if e not in generated]
    if missing:
        raise ArtifactError(
            f"{name}: no generated features for encoder(s) {', '.join(missing)}.",
            "extract generated features with every encoder that has an eval bank",
        )
    if not banks:
        raise ArtifactError(
            f"{name}: no encoders to evaluate.", "list encoders in the recipe (encoders.train / held_out)"
        )
    return list(banks)


def _summary(name: str, ratios: dict[str, float], held_out: Sequence[str]) -> dict[str, Any]:
    held = [e for e in ratios if e in set(held_out)]
    train = [e for e in ratios if e not in set(held_out)]
    return {
        "held_out": held,
        "mean_train": mean_ratio({e: ratios[e] for e in train}),
        "mean_held_out": mean_ratio({e: ratios[e] for e in held}),
        "dropped": [e for e, v in ratios.items() if v != v],  # NaN ratios are left out of the mean
        "metric": name,
    }


class PerEncoderRatio:
    """The loop both feature metrics share: one ratio per encoder, then their arithmetic mean.

    A subclass sets ``name`` and ``device`` and implements :meth:`encoder_ratio` (one encoder's
    ratio and details) and :meth:`settings` (what the report records about the metric).
    """

    name = "per_encoder_ratio"
    device: str | None = None

    def encoder_ratio(
        self, encoder: str, generated: Tensor, bank: EvalBank, device: Any
    ) -> tuple[float, dict[str, Any]]:
        """``(ratio, details)`` of one encoder; ``generated`` is already on ``device``."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The metric's parameters, stored in the report beside the ratios."""
        return {}

    def evaluate(
        self, *, generated: Mapping[str, Tensor], banks: Mapping[str, EvalBank], held_out: Sequence[str] = (), **_: Any
    ) -> MetricResult:
        """Score ``generated`` features against each encoder's (train, val) banks."""
        ratios: dict[str, float] = {}
        details: dict[str, dict[str, Any]] = {}
        for enc in _check_inputs(self.name, generated, banks):
            bank = banks[enc]
            dev = self.device or bank.train.device
            ratios[enc], details[enc] = self.encoder_ratio(enc, generated[enc].to(dev), bank, dev)
        extra = _summary(self.name, ratios, held_out)
        extra.update(details=details, **self.settings())
        return MetricResult(self.name, mean_ratio(ratios), ratios, extra)


class SlicedWassersteinRatio(PerEncoderRatio):
    """SW_r14: per encoder ``SW_2(gen, train) / SW_2(val, train)``, arithmetic mean over encoders.

    Args:
        num_projections: directions L (1024).
        chunk: directions per chunk (64).
        seed: direction seed shared by every encoder and checkpoint (0).
        p: order (2).
        n: cap on the common N (the protocol's 16384 for all three sets; ``None`` = no cap).
        device: where each encoder's sets are moved and the directions drawn (``None``: where
            the train bank is). The reference draws the directions on the GPU.
    """

    bank_splits = ("train", "val")  # scored against the real train and val banks of the reference build

    name = "sw_r14"

    def __init__(
        self,
        num_projections: int = NUM_PROJECTIONS,
        chunk: int = PROJECTION_CHUNK,
        seed: int = PROJECTION_SEED,
        p: int = 2,
        n: int | None = 16384,
        device: str | None = None,
    ) -> None:
        self.num_projections, self.chunk, self.seed, self.p, self.n = num_projections, chunk, seed, p, n
        self.device = device

    def encoder_ratio(
        self, encoder: str, generated: Tensor, bank: EvalBank, device: Any
    ) -> tuple[float, dict[str, Any]]:
        """``SW_2(gen, train) / SW_2(val, train)`` on the protocol's shared directions."""
        from rdm_eval.sliced import sliced_wasserstein_many

        sw, n = sliced_wasserstein_many(
            {"gen": generated, "val": bank.val.to(device)},
            bank.train.to(device),
            p=self.p,
            num_projections=self.num_projections,
            chunk=self.chunk,
            seed=self.seed,
            n=self.n,
            name=f"{self.name}/{encoder}",
        )
        ratio = safe_ratio(sw["gen"], sw["val"])
        return ratio, {"sw_gen": sw["gen"], "sw_val": sw["val"], "ratio": ratio, "n": n}

    def settings(self) -> dict[str, Any]:
        return {"num_projections": self.num_projections, "chunk": self.chunk, "seed": self.seed, "p": self.p}


class RffMmdRatio(PerEncoderRatio):
    """MMD_r14: per encoder ``m(gen) / m(val)`` with random Fourier features (D 4096, seed 99999).

    Args:
        features: RFF dimension D.
        seed: the RFF seed (independent of training); subsamples use ``seed + 1`` / ``seed + 2``.
        mean_subsample: train rows (seeded random) averaged into ``mu_r``.
        sigma_subsample: train rows (seeded random) for the median bandwidth.
        n: cap on the common N of gen and val (the paper used 50000 generated samples).
        device: where each encoder's sets are moved (``None``: where the train bank is). The RFF
            draw itself is on the CPU, so values do not depend on the device.
        mean_rows: ``random`` (seeded subsample) or ``first`` (the first ``mean_subsample`` train
            rows: the authors' rule, for reproducing their numbers).
        stored: ``auto`` uses a bank's stored RFF map (``eval/<encoder>_rff.safetensors``, e.g. an
            imported authors' bank) when it has one, ``never`` always draws from the train bank.
    """

    bank_splits = ("train", "val")  # scored against the real train and val banks of the reference build

    name = "mmd_r14"

    def __init__(
        self,
        features: int = 4096,
        seed: int = 99999,
        mean_subsample: int = 50000,
        sigma_subsample: int = 4096,
        n: int | None = None,
        device: str | None = None,
        mean_rows: str = "random",
        stored: str = "auto",
    ) -> None:
        from rdm_eval.rff import MEAN_ROWS

        if mean_rows not in MEAN_ROWS or stored not in ("auto", "never"):
            raise RecipeError(
                f"mmd_r14: mean_rows={mean_rows!r}, stored={stored!r}.",
                "use mean_rows: random|first and stored: auto|never",
            )
        self.features, self.seed = features, seed
        self.mean_subsample, self.sigma_subsample, self.n = mean_subsample, sigma_subsample, n
        self.device, self.mean_rows, self.stored = device, mean_rows, stored

    def encoder_ratio(
        self, encoder: str, generated: Tensor, bank: EvalBank, device: Any
    ) -> tuple[float, dict[str, Any]]:
        """``m(gen) / m(val)`` with the bank's stored RFF map, or one drawn from its train rows."""
        from rdm_eval.rff import RffBank, mmd_rff_ratios

        stored = None
        if bank.rff is not None and self.stored == "auto":
            meta = bank.meta.get("rff") or {}
            stored = RffBank.from_stored(bank.rff, float(meta["sigma"]), meta.get("mean_n"), device=device)
        out: dict[str, Any] = mmd_rff_ratios(
            generated,
            bank.val.to(device),
            bank.train.to(device),
            n=self.n,
            bank=stored,
            features=self.features,
            seed=self.seed,
            mean_subsample=self.mean_subsample,
            sigma_subsample=self.sigma_subsample,
            mean_rows=self.mean_rows,
        )
        out["rff_map"] = "stored" if stored is not None else "drawn"
        return out["ratio"], out

    def settings(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "seed": self.seed,
            "mean_subsample": self.mean_subsample,
            "mean_rows": self.mean_rows,
        }
