"""Turning recipe components into sources: registry lookup, resolution injection, filters.

``references.train`` / ``references.val`` are ``{name, args}`` components of the
``data_sources`` registry; curation filters (``references.filters``) are registered in the same
registry and wrap the source they receive as ``source=``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

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


def build_source(component: Any, resolution: int | None = None, where: str = "data source") -> Any:
    """Build an image or prompt source from a ``{name, args}`` component.

    ``resolution`` is passed when the factory accepts it and the component does not set it,
    so a recipe states the crop once (``references.resolution``). The arguments are first
    checked exactly as ``rdm validate`` checks them (one line naming an unknown one).
    """
    name, args = _component(component)
    sources = registry("data_sources")
    sources.check_args(name, args, where)
    factory = sources.resolve(name)
    if resolution is not None and "resolution" not in args and _accepts(factory, "resolution"):
        args["resolution"] = int(resolution)
    return factory(**args)


def apply_filters(source: Any, filters: Any, cache_dir: str | Path | None = None) -> Any:
    """Wrap ``source`` in each curation filter in turn.

    Each filter component gets ``source=`` and, when it accepts one and none is set, a
    ``cache`` file under ``cache_dir`` so a resumed build does not re-score everything.
    """
    for pos, comp in enumerate(plain(filters) or []):
        name, args = _component(comp)
        registry("data_sources").check_args(name, args, f"references.filters[{pos}]")
        factory = registry("data_sources").resolve(name)
        if cache_dir is not None and "cache" not in args and _accepts(factory, "cache"):
            args["cache"] = str(Path(cache_dir) / f"{pos:02d}_{name}.json")
        source = factory(source=source, **args)
    return source
