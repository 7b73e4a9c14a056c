"""Typed registries of lazy factories, filled by plugins through the ``rdm_register_*`` hooks.

A registration is cheap: a name, an optional spec, and a factory that is either a callable or a
``"module:attribute"`` string imported on first use. Heavy libraries (timm, open_clip,
transformers, diffusers) are therefore imported only when something is actually built.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from rdm_core.errors import DuplicateNameError, RecipeError, UnknownNameError

T = TypeVar("T")
Factory = Callable[..., Any] | str


def import_object(target: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, _, qualname = target.partition(":")
    if not qualname:
        raise ValueError(f"lazy factory {target!r} must look like 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T]):
    """One registered name: its factory, optional spec, and the plugin that registered it."""

    name: str
    factory: Factory
    spec: Any = None
    plugin: str = "<unknown>"
    help: str = ""
    _resolved: Any = field(default=None, repr=False)

    def resolve(self) -> Any:
        """The factory object, importing it if it was registered as a string."""
        if self._resolved is None:
            self._resolved = import_object(self.factory) if isinstance(self.factory, str) else self.factory
        return self._resolved


@runtime_checkable
class ArgsChecker(Protocol):
    """A factory that checks its recipe arguments further than its signature can, without building
    anything: nested components (a ``mix``'s parts, a filter's scorer), required files, option
    combinations. ``rdm validate`` calls it after binding the arguments to the signature."""

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None: ...


def missing_required(factory: Any, args: dict[str, Any], provided: tuple[str, ...] = ()) -> list[str]:
    """Parameters of ``factory`` without a default that ``args`` (and ``provided``) leave unset."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params
        if p.name != "self"
        and p.default is p.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and args.get(p.name) is None
        and p.name not in provided
    ]


@dataclass
class CommandSpec:
    """What ``rdm --help`` shows for a plugin command, without importing the command."""

    help: str


class Registry(Generic[T]):
    """Names -> lazy factories for one kind of component (encoder, kernel, generator, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._current_plugin = "<direct>"
        self.unavailable_hint: str | None = None

    # -- registration (called by plugins) --------------------------------------------------
    def add(self, name: str, factory: Factory, spec: Any = None, *, help: str = "", replace: bool = False) -> None:
        """Register ``name``. ``factory`` is a callable or a ``"module:attr"`` string.

        Args:
            name: registry name used in recipes and on the command line.
            factory: builds the component; called with keyword arguments from the recipe.
            spec: optional declared metadata (an ``EncoderSpec`` for encoders).
            help: one line shown in listings.
            replace: allow overriding an existing name (otherwise a duplicate is an error).
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries and not replace:
            other = self._entries[name].plugin
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice (by {other} and by {self._current_plugin}).",
                "rename one of them, or pass replace=True to override deliberately",
            )
        self._entries[name] = Entry(name, factory, spec, self._current_plugin, help)

    # -- lookup -----------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Names in registration order (for encoders: the panel order)."""
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; an :class:`UnknownNameError` with suggestions otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, self.unavailable_hint) from None

    def spec(self, name: str) -> Any:
        return self.get(name).spec

    def resolve(self, name: str) -> Any:
        return self.get(name).resolve()

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Build ``name`` by calling its factory with ``kwargs``."""
        return self.resolve(name)(**kwargs)

    def check_args(self, name: str, args: dict[str, Any], where: str) -> None:
        """Check that ``args`` bind to the factory's signature, without calling it.

        Raises:
            RecipeError: naming the bad argument and the accepted ones.
        """
        factory = self.resolve(name)
        target = factory.__init__ if inspect.isclass(factory) else factory
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):  # builtins without signatures: nothing to check
            return
        params = [p for p in sig.parameters.values() if p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            accepted = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            for key in args:
                if key not in accepted:
                    from rdm_core.errors import close_matches

                    guess = close_matches(key, accepted)
                    did = f" Did you mean {guess[0]!r}?" if guess else ""
                    raise RecipeError(
                        f"{where}: {self.kind} {name!r} has no argument {key!r}.{did}",
                        f"use one of: {', '.join(accepted) or '(none)'}",
                    )
        if isinstance(factory, ArgsChecker):
            factory.check_recipe_args(dict(args), where)

    # -- used by the plugin host ------------------------------------------------------------
    def _registering(self, plugin: str) -> None:
        self._current_plugin = plugin


REGISTRY_KINDS: dict[str, str] = {
    # hook suffix -> human name of one item
    "encoders": "encoder",
    "kernels": "kernel",
    "references": "reference set",
    "objectives": "objective",
    "generators": "generator",
    "trainers": "trainer",
    "metrics": "metric",
    "data_sources": "data source",
    "stages": "run stage",
    "commands": "command",
}
