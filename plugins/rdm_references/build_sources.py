"""Turning recipe components into sources: registry lookup, resolution injection, filters.

:func:`open_sources` opens the sources a recipe's ``references`` section names, per split.

``references.train`` / ``references.val`` are ``{name, args}`` components of the
``data_sources`` registry; curation filters (``references.filters``) are registered in the same
registry and wrap the source they receive as ``source=``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from rdm_core.devices import resolve_device
from rdm_core.errors import RecipeError
from rdm_core.plugins import registry
from rdm_core.recipe.assemble import plain


def _accepts(factory: Any, name: str) -> bool:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _component(component: Any) -> tuple[str, dict[str, Any]]:
    comp = plain(component)
    if isinstance(comp, dict):
        return str(comp.get("name")), dict(comp.get("args") or {})
    return str(component.name), dict(plain(component.args) or {})


def _declares(factory: Any, name: str) -> bool:
    """Whether the factory names ``name`` as a parameter (``**kwargs`` does not count)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def build_source(
    component: Any,
    resolution: int | None = None,
    *,
    device: str | None = None,
    work_dir: str | Path | None = None,
    precision: str | None = None,
    where: str = "data source",
) -> Any:
    """Build an image or prompt source from a ``{name, args}`` component.

    What the recipe states once is passed to every factory that takes it and is not given it
    explicitly: ``resolution`` (``references.resolution``), ``device`` (``run.device``, so
    renders and scorers run where the recipe says), ``precision`` (``train.precision``: teacher
    renders run under the training autocast), and for filters the ``cache`` file of their
    scores (``<work_dir>/<name>.json``); a ``mix`` and a filter pass them on to their parts.
    """
    name, args = _component(component)
    sources = registry("data_sources")
    sources.check_args(name, args, where)
    factory = sources.resolve(name)
    if resolution is not None and "resolution" not in args and _accepts(factory, "resolution"):
        args["resolution"] = int(resolution)
    for key, value in (("device", device), ("precision", precision)):
        if value is not None and key not in args and _declares(factory, key):
            args[key] = value
    if work_dir is not None:
        if "cache" not in args and _declares(factory, "cache"):
            args["cache"] = str(Path(work_dir) / f"{name}.json")
        if "work_dir" not in args and _declares(factory, "work_dir"):
            args["work_dir"] = str(work_dir)
    return factory(**args)


def apply_filters(source: Any, filters: Any, cache_dir: str | Path | None = None, device: str | None = None) -> Any:
    """Wrap ``source`` in each curation filter in turn.

    Each filter component gets ``source=`` and, when it accepts one and none is set, a
    ``cache`` file under ``cache_dir`` so a resumed build does not re-score everything, and
    the recipe's ``device``.
    """
    for pos, comp in enumerate(plain(filters) or []):
        name, args = _component(comp)
        registry("data_sources").check_args(name, args, f"references.filters[{pos}]")
        factory = registry("data_sources").resolve(name)
        if cache_dir is not None and "cache" not in args and _accepts(factory, "cache"):
            args["cache"] = str(Path(cache_dir) / f"{pos:02d}_{name}.json")
        if device is not None and "device" not in args and _declares(factory, "device"):
            args["device"] = device
        source = factory(source=source, **args)
    return source


def open_sources(recipe: Any, splits: tuple[str, ...]) -> dict[str, Any]:
    """The image sources of the requested splits (train with the curation filters applied).

    Every source gets the recipe's device; curation files live under ``<references.dir>/curation``.
    """
    refs = recipe.references
    res, device, precision = int(refs.resolution), str(resolve_device(recipe.run.device)), str(recipe.train.precision)
    work = Path(refs.dir) / "curation"
    sources: dict[str, Any] = {}
    if "train" in splits:
        if refs.train.name in ("???", None):
            raise RecipeError(
                "references.train names no image source.",
                "set references.train: {name: folder, args: {root: DIR}} (or jsonl, teacher, mix)",
            )
        train = build_source(
            refs.train, res, device=device, precision=precision, work_dir=work / "train", where="references.train"
        )
        sources["train"] = apply_filters(train, refs.filters, work, device)
    if "val" in splits and refs.val is not None:
        sources["val"] = build_source(
            refs.val, res, device=device, precision=precision, work_dir=work / "val", where="references.val"
        )
    return sources
