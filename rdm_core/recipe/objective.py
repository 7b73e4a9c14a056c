"""The recipe's ``objective:`` section, typed by the schema its objective declares.

A recipe names its objective (``objective.name``, default ``mmd``); every other key of the
section belongs to that objective. The objective's registration carries an
:class:`~rdm_core.interfaces.ObjectiveSpec` whose ``settings`` dataclass is the schema of those
keys. While YAML layers and ``--set`` overrides are merged the section is a free mapping; once
they are all in, the loader merges it into :func:`settings_schema` in struct mode, so a
misspelled objective key fails in one line naming the valid keys, like a core key.

An objective that is not registered (its plugin disabled, or a misspelled name) leaves the
section untyped: commands that never train (``rdm eval``, ``rdm generate``) still load the
recipe, and ``rdm validate`` / ``rdm train`` report the unknown name with the plugin to enable.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from rdm_core.errors import RecipeError
from rdm_core.interfaces import ObjectiveSpec
from rdm_core.recipe.schema import DEFAULT_OBJECTIVE

MISSING = "???"  # OmegaConf's marker of a required value


def objective_spec(name: str) -> ObjectiveSpec | None:
    """The registered spec of objective ``name``; ``None`` when no plugin registers it."""
    from rdm_core.plugins import registry

    objectives = registry("objectives")
    if name not in objectives:
        return None
    spec = objectives.spec(name)
    if spec is None:
        return ObjectiveSpec()
    if not isinstance(spec, ObjectiveSpec):
        raise RecipeError(
            f"objective {name!r} is registered with a {type(spec).__name__} spec, not an ObjectiveSpec.",
            f"fix plugin {objectives.get(name).plugin!r}: registry.add(name, factory, spec=ObjectiveSpec(settings=...))",
        )
    return spec


def resolve_declared(target: Any) -> Any:
    """A spec reference as an object: ``"module:attr"`` strings are imported, others returned."""
    from rdm_core.registry import import_object

    return import_object(target) if isinstance(target, str) else target


def settings_schema(name: str) -> type | None:
    """The dataclass that types ``objective`` for objective ``name`` (``None``: not registered).

    The class has ``name`` first, then the declared settings' fields with their defaults.
    """
    spec = objective_spec(name)
    if spec is None:
        return None
    declared = resolve_declared(spec.settings) if spec.settings is not None else None
    if declared is not None and not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        raise RecipeError(
            f"objective {name!r} declares settings {declared!r}, which is not a dataclass.",
            "declare ObjectiveSpec(settings=<a dataclass of the objective's recipe keys>)",
        )
    return _section_class(name, declared)


@functools.cache
def _section_class(name: str, declared: type | None) -> type:
    fields: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=name))]
    if declared is not None:
        hints = typing.get_type_hints(declared)
        for f in dataclasses.fields(declared):
            if f.name == "name":
                raise RecipeError(
                    f"objective {name!r} declares a setting called 'name', which the core owns.",
                    "rename that field of the objective's settings dataclass",
                )
            if f.default is not dataclasses.MISSING:
                default = dataclasses.field(default=f.default)
            elif f.default_factory is not dataclasses.MISSING:
                default = dataclasses.field(default_factory=f.default_factory)
            else:
                default = dataclasses.field(default=MISSING)
            fields.append((f.name, hints[f.name], default))
    cls = dataclasses.make_dataclass(declared.__name__ if declared else "ObjectiveSection", fields)
    cls.__doc__ = (declared.__doc__ if declared else None) or f"Settings of objective {name!r}."
    cls.__module__ = declared.__module__ if declared else __name__
    return cls


def objective_name(section: Any) -> str:
    """``objective.name`` of a merged (possibly still free-form) section."""
    name = section.get("name", DEFAULT_OBJECTIVE) if section is not None else DEFAULT_OBJECTIVE
    if not isinstance(name, str) or not name:
        raise RecipeError(f"objective.name must be a registry name, got {name!r}.", "see `rdm plugins`")
    return name


def keys_of(cls: Any, path: list[str]) -> list[str]:
    """The keys valid at dotted ``path`` below dataclass ``cls`` (list indices are skipped).

    ``objective`` below the recipe resolves to the schema of the recipe's objective, which the
    caller passes as ``cls`` for paths that start inside the section.
    """
    for part in path:
        if part.isdigit():
            continue
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        cls = _unwrap(hints.get(part))
        if cls is None:
            return []
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _unwrap(hint: Any) -> Any:
    """``Optional[X]`` / ``List[X]`` -> ``X``; a dataclass stays itself; anything else -> ``None``."""
    if hint is None:
        return None
    if dataclasses.is_dataclass(hint):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType, list) and len(args) == 1:
        return _unwrap(args[0])
    return None
