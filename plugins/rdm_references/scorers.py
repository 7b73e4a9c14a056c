"""Scorers of curation filters: what a ``scorer`` argument may be, and a stable name for each.

A scorer is a callable ``(images, captions) -> scores``, an object with ``score(images,
captions)``, or a :class:`FileScorer` that scores saved image files in one pass; a recipe names
one as a ``"module:attr"`` string or a metrics-registry name.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rdm_core.capabilities import Scorer
from rdm_core.errors import RecipeError


@runtime_checkable
class FileScorer(Protocol):
    """A scorer that scores saved image files in one pass (one external process per filter)."""

    def score_files(self, files: Sequence[Path], captions: Sequence[str], workdir: Path) -> list[float]: ...


def _takes(factory: Any, name: str) -> bool:
    """Whether ``factory`` declares a parameter ``name`` explicitly (``**kwargs`` does not count)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def resolve_scorer(scorer: Any, scorer_args: dict[str, Any] | None = None, device: str | None = None) -> Any:
    """The scorer object: a :class:`FileScorer`, or a callable ``(images, captions) -> scores``.

    ``device`` is given to a scorer built here whose factory takes one and whose args set none.
    """
    from rdm_core.registry import import_object

    args = dict(scorer_args or {})
    obj = scorer
    if isinstance(scorer, str):
        if ":" in scorer:
            obj = import_object(scorer)
            if isinstance(obj, type):
                if device is not None and "device" not in args and _takes(obj, "device"):
                    args["device"] = device
                obj = obj(**args)
        else:
            from rdm_core.plugins import registry

            metrics = registry("metrics")
            if device is not None and "device" not in args and _takes(metrics.resolve(scorer), "device"):
                args["device"] = device
            obj = metrics.create(scorer, **args)
    if isinstance(obj, FileScorer):
        return obj
    if isinstance(obj, Scorer):
        return obj.score
    if callable(obj):
        return obj
    raise RecipeError(
        f"scorer {scorer!r} is neither callable nor has a score() method.",
        "pass a function (images, captions) -> scores, a 'module:attr' path, or a metric name",
    )


def scorer_identity(scorer: Any, scorer_args: dict[str, Any] | None) -> str:
    """A stable name for a scorer, so cached scores are never reused for another scorer."""
    import inspect
    import json

    if isinstance(scorer, str):
        name = scorer
    else:
        target = scorer.__func__ if inspect.ismethod(scorer) else scorer  # a bound method: its function
        named = target if inspect.isroutine(target) or inspect.isclass(target) else type(target)
        name = f"{named.__module__}.{named.__qualname__}"
    return f"{name}|{json.dumps(scorer_args or {}, sort_keys=True, default=str)}"
