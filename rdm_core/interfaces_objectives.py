"""The objective contract: the global batch's features -> one scalar loss, and what the core knows of it.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rdm_core.interfaces_encoders import Encoder  # at run time too: ObjectiveContext's hints resolve

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the core knows about a registered objective without importing it.

    Each reference is a class/function or a ``"module:attr"`` string imported on first use, so
    registering stays cheap.

    Attributes:
        settings: the dataclass of the objective's recipe section (every key of ``objective:``
            except ``name``); the recipe loader merges the section into it in struct mode, so a
            misspelled key fails in one line naming the valid ones. ``None``: no settings.
        check: ``check(recipe) -> list[str]``, run by ``rdm validate`` after the core checks:
            names and values only, never building anything; raises ``RecipeError`` on a problem
            and returns a description of each passed check.
        plan: ``plan(recipe, feature_dims) -> ObjectiveCost`` for ``rdm plan`` (no references
            are loaded).
    """

    settings: type | str | None = None
    check: Callable[[Any], list[str]] | str | None = None
    plan: Callable[[Any, Mapping[str, int]], ObjectiveCost] | str | None = None


@dataclass
class ObjectiveCost:
    """An objective's own share of one step's cost, as ``rdm plan`` reports it.

    Attributes:
        feature_dims: per training encoder, the width of the features the loss sees (the
            encoder's dim plus whatever the objective appends, e.g. a text block).
        memory: named byte counts of the loss's working memory on the global batch.
        flops: FLOPs of the loss and its gradient with respect to the features.
    """

    feature_dims: dict[str, int]
    memory: dict[str, float] = field(default_factory=dict)
    flops: float = 0.0


@dataclass(frozen=True)
class ObjectiveContext:
    """What a trainer hands an objective factory (``factory(context) -> Objective``).

    Attributes:
        recipe: the loaded recipe; ``recipe.objective`` is the objective's validated section.
        encoders: the built training encoders (name -> module with ``.spec``), in recipe order.
        device: where the loss runs.
        rollout: the global batch N of one step (every rank's rows together).
        recipe_ref: how the user named the recipe, for "rebuild with `rdm ... RECIPE`" hints.
    """

    recipe: Any
    encoders: Mapping[str, Encoder]
    device: Any
    rollout: int
    recipe_ref: str = "RECIPE"

    @property
    def settings(self) -> Any:
        """The objective's recipe section (``recipe.objective``)."""
        return self.recipe.objective


@runtime_checkable
class Objective(Protocol):
    """Turns the global batch's features into one scalar loss: all a trainer needs to know.

    ``loss`` is computed identically on every rank from the gathered features of all ranks, so
    it must be deterministic given them (draw any randomness from generators seeded by the step,
    see :class:`~rdm_core.capabilities.SteppedObjective`). Optional capabilities
    (:mod:`rdm_core.capabilities`): being told the step (``SteppedObjective``), state saved in
    checkpoints (``StatefulObjective``), extending each chunk's features (``FeatureCoupling``).
    """

    def loss(self, features: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """``{encoder: (N, d)}`` global features -> ``(scalar loss, logs)``.

        ``logs`` is JSON-ready and goes into the step's metrics row. By convention its ``raw``
        entry, when present, maps each loss term's name to its float value: the progress bar,
        ``loss.png`` and the closing line of ``rdm train`` show it.
        """
        ...
