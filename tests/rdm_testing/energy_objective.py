"""A third-party objective, as an outside package would write it: the energy distance.

Per training encoder ``e``, with generated features ``X`` (the global batch) and real features
``Y`` (a seeded sample of ``references.train``, encoded once when the objective is built)::

    ED_e = 2 mean_ij |x_i - y_j| - mean_ii' |x_i - x_i'| - mean_jj' |y_j - y_j'|

(Szekely & Rizzo's energy distance; zero iff the two distributions agree). The loss is the sum of
``ED_e`` over encoders. It needs no reference build: it imports only ``rdm_core``, never rdm_mmd
or rdm_gradcache, and plugs in through the ``objectives`` registry kind with its own validated
recipe section (``objective: {name: energy, real_samples, seed}``).

Register in-process with :func:`energy_host`; the test suite trains the digits recipe with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rdm_core import hookimpl
from rdm_core.errors import RecipeError
from rdm_core.interfaces import ObjectiveContext, ObjectiveSpec
from rdm_core.numerics import sq_dists
from rdm_core.recipe.assemble import build_data_source

NAME = "energy"


@dataclass
class EnergySettings:
    """``objective:`` keys of the energy objective.

    Attributes:
        real_samples: real images drawn from ``references.train`` (seeded, without replacement).
        seed: seed of that draw.
    """

    real_samples: int = 512
    seed: int = 0


def check(recipe: Any) -> list[str]:
    """``rdm validate``: values only, nothing built."""
    if int(recipe.objective.real_samples) < 2:
        raise RecipeError("objective.real_samples must be at least 2.", "use e.g. 512")
    return [f"energy objective on {recipe.objective.real_samples} real samples"]


def mean_distance(x: Tensor, y: Tensor, same: bool = False) -> Tensor:
    """Mean Euclidean distance over all pairs (``same``: ``x is y``, the diagonal's zeros included
    but kept out of the square root, whose gradient is infinite at 0)."""
    d2 = sq_dists(x, y)
    if same:
        eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
        return ((d2 + eye).clamp_min(1e-12).sqrt() * (1 - eye)).mean()
    return d2.clamp_min(1e-12).sqrt().mean()


class EnergyObjective:
    """Implements :class:`rdm_core.interfaces.Objective` and nothing optional."""

    def __init__(self, context: ObjectiveContext) -> None:
        settings = context.settings
        source = build_data_source(context.recipe.references.train)
        count = min(int(settings.real_samples), len(source))
        rng = torch.Generator().manual_seed(int(settings.seed))
        indices = torch.randperm(len(source), generator=rng)[:count].sort().values.tolist()
        images = source.read(indices).images.to(context.device)
        self.real: dict[str, Tensor] = {}
        self.real_term: dict[str, Tensor] = {}
        with torch.no_grad():
            for name, encoder in context.encoders.items():
                weights = next(encoder.parameters(), None)
                dtype = weights.dtype if weights is not None else torch.float32
                feats = encoder(images.to(dtype)).double()
                self.real[name] = feats
                self.real_term[name] = mean_distance(feats, feats, same=True)

    def distance(self, name: str, generated: Tensor) -> Tensor:
        """``ED`` of encoder ``name``'s generated features (float64)."""
        x, y = generated.double(), self.real[name].to(generated.device)
        return 2 * mean_distance(x, y) - mean_distance(x, x, same=True) - self.real_term[name].to(x.device)

    def loss(self, features: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        raw = {name: self.distance(name, f) for name, f in features.items()}
        total = torch.stack(list(raw.values())).sum()
        return total.to(next(iter(features.values())).dtype), {"raw": {n: float(v.detach()) for n, v in raw.items()}}


def energy_objective(context: ObjectiveContext) -> EnergyObjective:
    """Factory registered as objective ``energy``."""
    return EnergyObjective(context)


@hookimpl
def rdm_register_objectives(registry) -> None:
    registry.add(
        NAME,
        "rdm_testing.energy_objective:energy_objective",
        spec=ObjectiveSpec(
            settings="rdm_testing.energy_objective:EnergySettings", check="rdm_testing.energy_objective:check"
        ),
        help="test-only third-party objective: energy distance to real features",
    )


def energy_host() -> Any:
    """A plugin host with every installed plugin plus this one (install with ``set_host``)."""
    import sys

    from rdm_core.plugins import PluginHost

    host = PluginHost()
    host.register_module(sys.modules[__name__], "energy_objective")
    return host
