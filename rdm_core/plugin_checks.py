"""Checks of what plugins registered: factories that exist, specs of the right type, recipe files.

Two depths, both one line per problem:

* **source** (``rdm plugins``): a lazy ``"module:attr"`` factory whose module is not on
  ``sys.path``, or whose module certainly binds no such attribute, read from source without
  importing anything; a spec of the wrong type; a registered recipe file that does not exist.
* **import** (``rdm plugins --check``): every factory imported; it must be callable, and the
  parameters ``rdm validate`` reads from its source must be the ones Python sees; every
  registered recipe must load.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from rdm_core.errors import RdmError
from rdm_core.registry import Entry, _parameters_of

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.plugin_records import PluginProblem
    from rdm_core.plugins import PluginHost

FIX_FACTORY = "fix the factory string ('module:attribute') in the plugin's registration, or reinstall the plugin"


def _spec_problem(kind: str, entry: Entry) -> str | None:
    from rdm_core.interfaces import EncoderSpec, ObjectiveSpec
    from rdm_core.registry import CommandSpec

    expected: dict[str, type] = {"encoders": EncoderSpec, "commands": CommandSpec, "objectives": ObjectiveSpec}
    want = expected.get(kind)
    if want is None or entry.spec is None or isinstance(entry.spec, want):
        return None
    article = "an" if want.__name__[0] in "AEIOU" else "a"
    return f"its spec is a {type(entry.spec).__name__}, not {article} {want.__name__}"


def _recipe_problem(entry: Entry, deep: bool) -> tuple[str, str] | None:
    from rdm_core.recipe.load import load_recipe, recipe_file

    try:
        path = recipe_file(entry.factory)
        if not path.is_file():
            return f"recipe {entry.name!r} points at {path}, which does not exist.", "fix the registered path"
        if deep:
            load_recipe(path)
    except RdmError as exc:
        return f"recipe {entry.name!r}: {exc.problem}", exc.fix or "fix the recipe"
    return None


def _signature_text(params: list[inspect.Parameter]) -> str:
    return ", ".join(p.name for p in params)


def _import_problem(entry: Entry) -> str | None:
    """Import the factory; compare its real parameters with the ones read from source."""
    from rdm_core.factory_source import static_parameters
    from rdm_core.registry import import_object

    try:
        obj = entry._resolved if entry._resolved is not None else import_object(str(entry.factory))
    except Exception as exc:  # any import-time error of the plugin's module
        detail = " ".join(str(exc).split())
        return f"factory {entry.factory!r} cannot be imported ({type(exc).__name__}: {detail})"
    entry._resolved = obj
    if not callable(obj):
        return f"factory {entry.factory!r} is a {type(obj).__name__}, not a callable"
    static = static_parameters(str(entry.factory))
    real = _parameters_of(obj)
    if static is not None and real is not None:
        if [(p.name, p.kind) for p in static] != [(p.name, p.kind) for p in real]:
            return (
                f"`rdm validate` reads parameters ({_signature_text(static)}) from the source of "
                f"{entry.factory!r}, but it takes ({_signature_text(real)})"
            )
    return None


def _objective_spec_problem(entry: Entry) -> str | None:
    """Import what an ``ObjectiveSpec`` names (settings, check, plan); settings must be a dataclass."""
    from dataclasses import is_dataclass

    from rdm_core.registry import import_object

    for field in ("settings", "check", "plan"):
        target = getattr(entry.spec, field, None)
        if target is None:
            continue
        try:
            obj = import_object(target) if isinstance(target, str) else target
        except Exception as exc:  # any import-time error of the plugin's module
            detail = " ".join(str(exc).split())
            return f"ObjectiveSpec.{field} {target!r} cannot be imported ({type(exc).__name__}: {detail})"
        if field == "settings" and not (isinstance(obj, type) and is_dataclass(obj)):
            return f"ObjectiveSpec.settings {target!r} is not a dataclass"
        if field != "settings" and not callable(obj):
            return f"ObjectiveSpec.{field} {target!r} is not callable"
    return None


def factory_problem(kind: str, entry: Entry, *, deep: bool) -> tuple[str, str] | None:
    """``(problem, fix)`` for one registration, or ``None`` when it looks right.

    Args:
        kind: the registry kind (``encoders``).
        entry: the registration.
        deep: import the factory (see the module docstring).
    """
    what = f"{entry.kind} {entry.name!r}"
    if kind == "recipes":
        return _recipe_problem(entry, deep)
    spec = _spec_problem(kind, entry)
    if spec is not None:
        return f"{what}: {spec}.", "register the spec type the hook reference asks for (docs/plugins.md)"
    if deep and kind == "objectives" and entry.spec is not None:
        spec = _objective_spec_problem(entry)
        if spec is not None:
            return f"{what}: {spec}.", "fix the ObjectiveSpec in the plugin's registration (docs/plugins.md)"
    if not isinstance(entry.factory, str):
        return None
    if deep:
        problem = _import_problem(entry)
    else:
        from rdm_core.factory_source import check_target

        problem = check_target(entry.factory)
        if problem is not None:
            problem = f"factory {entry.factory!r}: {problem}"
    return (f"{what}: {problem}.", FIX_FACTORY) if problem else None


def describe_factory(entry: Entry) -> dict[str, Any]:
    """JSON-ready description of a registration (``rdm components --json``)."""
    from dataclasses import asdict, is_dataclass

    spec = entry.spec
    if is_dataclass(spec) and not isinstance(spec, type):
        spec = asdict(spec)
    elif spec is not None:
        spec = repr(spec)
    return {
        "name": entry.name,
        "kind": entry.kind,
        "plugin": entry.plugin,
        "factory": entry.factory if isinstance(entry.factory, str) else getattr(entry.factory, "__qualname__", "?"),
        "help": entry.help,
        "spec": spec,
        "offer": entry.offer,
    }


def check_factories(host: PluginHost, *, deep: bool = False) -> list[PluginProblem]:
    """Check every registration of every plugin; each problem is recorded on its plugin.

    Args:
        host: the plugin host (its registries are filled as needed).
        deep: import every factory (``rdm plugins --check``) and compare its signature with the
            one ``rdm validate`` reads from source; otherwise only read sources (cheap).

    Returns:
        The problems found by this call (also in ``host.problems()``).
    """
    found: list[PluginProblem] = []
    for kind, entry in host.all_entries():
        record = host.records.get(entry.plugin)
        if record is None:
            continue
        problem = factory_problem(kind, entry, deep=deep)
        if problem is not None:
            before = len(record.problems)
            host.report(record, "failed", f"{record.describe()}: {problem[0]}", problem[1], strict=False)
            found += record.problems[before:]
    return found


def disabled_provider(host: PluginHost, kind: str, name: str) -> str | None:
    """The disabled plugin of ``host`` that would register ``name`` in registry ``kind``, if any.

    Only called on the error path of a missing name, to say which plugin to re-enable: each
    disabled plugin's module is imported and its hook run into a scratch registry that nothing
    else sees.
    """
    import importlib

    import pluggy

    from rdm_core import hookspecs
    from rdm_core.plugins import ENTRY_POINT_GROUP
    from rdm_core.registry import REGISTRY_KINDS, Registry

    for record in host.records.values():
        if record.status != "disabled":
            continue
        scratch_pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        scratch_pm.add_hookspecs(hookspecs)
        scratch: Registry = Registry(REGISTRY_KINDS[kind])
        try:
            scratch_pm.register(importlib.import_module(record.module), name=record.name)
            getattr(scratch_pm.hook, f"rdm_register_{kind}")(registry=scratch)
        except Exception:  # a plugin disabled because it is broken: it provides nothing here
            continue
        if name in scratch:
            return record.name
    return None
