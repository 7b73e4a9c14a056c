"""Typed registries of lazy factories, filled by plugins through the ``rdm_register_*`` hooks.

A registration is cheap: a name, an optional spec, and a factory that is either a callable or a
``"module:attribute"`` string imported on first use. Heavy libraries (timm, open_clip,
transformers, diffusers) are therefore imported only when something is actually built.

Names belong to whoever registered them first in load order, and first-party plugins (the
distribution named ``rdm``) always load first, so a third-party plugin can never take a shipped
name by accident:

* a third-party registration of a name a first-party plugin holds is **refused** (that name
  only; the rest of the plugin still registers) and recorded in :attr:`Registry.refusals`;
* two third-party plugins claiming one name are both refused (the name is *contested*), so the
  winner never depends on installation or alphabetical order;
* ``replace=True`` registers an **offer** to replace the existing entry. The shipped entry
  stays in use until a recipe selects the offer (``plugins.replace``, see
  :meth:`rdm_core.plugins.PluginHost.select_replacements`).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from rdm_core.errors import DuplicateNameError, PluginError, RecipeError, UnknownNameError, close_matches

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
    """One registered name: its factory, optional spec, and the plugin that registered it.

    Attributes:
        kind: human name of the registry's items (``encoder``), for messages.
        first_party: registered by a plugin of the ``rdm`` distribution.
        offer: registered with ``replace=True`` over another plugin's entry.
    """

    name: str
    factory: Factory
    spec: Any = None
    plugin: str = "<unknown>"
    help: str = ""
    kind: str = "component"
    first_party: bool = True
    offer: bool = False
    _resolved: Any = field(default=None, repr=False)

    def resolve(self) -> Any:
        """The factory object, importing it if it was registered as a string.

        Raises:
            PluginError: the factory's module or attribute cannot be imported (one line naming
                the plugin, the component and the factory string).
        """
        if self._resolved is None:
            if not isinstance(self.factory, str):
                self._resolved = self.factory
            else:
                try:
                    self._resolved = import_object(self.factory)
                except (ImportError, AttributeError, ValueError) as exc:
                    raise PluginError(
                        f"{self.kind} {self.name!r} of plugin {self.plugin!r}: factory {self.factory!r} "
                        f"cannot be imported ({type(exc).__name__}: {exc}).",
                        f"fix the registration in plugin {self.plugin!r} or reinstall it; "
                        "`rdm plugins --check` lists every such problem",
                    ) from None
        return self._resolved

    def parameters(self) -> list[inspect.Parameter] | None:
        """The factory's call parameters, read from source when it is still a lazy string.

        ``None`` when it has no introspectable signature. Reading the source keeps ``rdm
        validate`` free of heavy imports; factories whose source cannot be read statically
        (see :mod:`rdm_core.factory_source`) are imported instead.
        """
        if isinstance(self.factory, str) and self._resolved is None:
            from rdm_core.factory_source import static_parameters

            found = static_parameters(self.factory)
            if found is not None:
                return found
        return _parameters_of(self.resolve())

    def may_define(self, member: str) -> bool:
        """Whether the factory may define ``member`` (read from source; ``True`` when unsure)."""
        if isinstance(self.factory, str) and self._resolved is None:
            from rdm_core.factory_source import static_defines

            return static_defines(self.factory, member) is not False
        return True

    def product_may_define(self, member: str) -> bool:
        """Whether what the factory builds may define ``member``: a class itself, or the class a
        factory function's return annotation names (read from source when not yet imported;
        ``True`` when unsure)."""
        if isinstance(self.factory, str) and self._resolved is None:
            from rdm_core.factory_source import static_product_defines

            return static_product_defines(self.factory, member) is not False
        built = _product_class(self.resolve())
        return built is None or any(member in vars(k) for k in built.__mro__)


def _product_class(factory: Any) -> type | None:
    """The class ``factory`` builds, when known without calling it."""
    if isinstance(factory, type):
        return factory
    try:
        built = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: unknown
        return None
    return built if isinstance(built, type) else None


def _parameters_of(factory: Any) -> list[inspect.Parameter] | None:
    """What calling ``factory`` accepts (for a class: constructing it, ``self`` excluded)."""
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # builtins without signatures: nothing to check
        return None


@runtime_checkable
class ArgsChecker(Protocol):
    """A factory that checks its recipe arguments further than its signature can, without building
    anything: nested components (a ``mix``'s parts, a filter's scorer), required files, option
    combinations. ``rdm validate`` calls it after binding the arguments to the signature; keep the
    module that defines it light (it is imported to run the check)."""

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


@dataclass(frozen=True)
class Refusal:
    """A registration that did not take effect because another plugin holds the name.

    ``kept`` is the plugin whose entry stays in use (``None`` when the name is contested by
    third-party plugins and none of them is used).
    """

    kind: str
    name: str
    refused: str
    kept: str | None


@dataclass
class CommandSpec:
    """What ``rdm --help`` shows for a plugin command, without importing the command."""

    help: str


class Registry(Generic[T]):
    """Names -> lazy factories for one kind of component (encoder, kernel, generator, ...)."""

    def __init__(self, kind: str, on_create: Callable[[Entry[T], Any], T] | None = None) -> None:
        self.kind = kind
        self._on_create = on_create  # checks what factories build (rdm_core.contracts.guard)
        self._entries: dict[str, Entry[T]] = {}
        self._offers: dict[str, dict[str, Entry[T]]] = {}  # name -> plugin -> offered entry
        self._shadowed: dict[str, Entry[T]] = {}  # name -> entry replaced by a selected offer
        self._contested: dict[str, list[Entry[T]]] = {}
        self.refusals: list[Refusal] = []
        self._current_plugin = "<direct>"
        self._current_first_party = True
        self.unavailable_hint: str | None = None

    # -- registration (called by plugins) --------------------------------------------------
    def add(self, name: str, factory: Factory, spec: Any = None, *, help: str = "", replace: bool = False) -> None:
        """Register ``name``. ``factory`` is a callable or a ``"module:attr"`` string.

        Args:
            name: registry name used in recipes and on the command line.
            factory: builds the component; called with keyword arguments from the recipe.
            spec: optional declared metadata (an ``EncoderSpec`` for encoders).
            help: one line shown in listings.
            replace: offer to replace another plugin's entry of the same name. The offer is
                used only when a recipe selects it (``plugins.replace``); without it, a name
                another plugin holds is refused (and reported by ``rdm plugins``).
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if not isinstance(factory, str) and not callable(factory):
            raise ValueError(f"{self.kind} {name!r}: the factory must be a callable or a 'module:attr' string")
        entry: Entry[T] = Entry(name, factory, spec, self._current_plugin, help, self.kind, self._current_first_party)
        if name in self._contested:
            self._contested[name].append(entry)
            self.refusals.append(Refusal(self.kind, name, entry.plugin, None))
            return
        existing = self._entries.get(name)
        if existing is None:
            self._entries[name] = entry
        elif existing.plugin == entry.plugin:
            if not replace:
                raise DuplicateNameError(
                    f"{self.kind} {name!r} is registered twice by plugin {entry.plugin!r}.",
                    "register each name once (replace=True re-registers deliberately)",
                )
            self._entries[name] = entry
        elif replace:
            entry.offer = True
            self._offers.setdefault(name, {})[entry.plugin] = entry
        elif existing.first_party and entry.first_party:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice (by {existing.plugin} and by {entry.plugin}).",
                "rename one of them",
            )
        elif existing.first_party:
            self.refusals.append(Refusal(self.kind, name, entry.plugin, existing.plugin))
        elif entry.first_party:  # only when a host did not load first-party plugins first
            self._entries[name] = entry
            self.refusals.append(Refusal(self.kind, name, existing.plugin, entry.plugin))
        else:
            del self._entries[name]
            self._contested[name] = [existing, entry]
            self.refusals.append(Refusal(self.kind, name, existing.plugin, None))
            self.refusals.append(Refusal(self.kind, name, entry.plugin, None))

    # -- replacement offers ---------------------------------------------------------------------
    def offers(self) -> dict[str, list[str]]:
        """``name -> plugins`` offering a replacement for it."""
        return {name: list(by) for name, by in self._offers.items()}

    def select(self, name: str, plugin: str) -> None:
        """Use ``plugin``'s offered replacement for ``name`` (undone by :meth:`unselect_all`)."""
        offer = self._offers.get(name, {}).get(plugin)
        if offer is None:
            offered = ", ".join(self._offers.get(name, {})) or "none"
            raise RecipeError(
                f"plugins.replace: plugin {plugin!r} offers no replacement for {self.kind} {name!r} "
                f"(plugins offering one: {offered}).",
                "a plugin offers a replacement with registry.add(..., replace=True); "
                "see `rdm components` for the offers",
            )
        self._shadowed.setdefault(name, self._entries[name])
        self._entries[name] = offer

    def unselect_all(self) -> None:
        """Back to the entries plugins registered first (no replacement in use)."""
        self._entries.update(self._shadowed)
        self._shadowed.clear()

    def registrations(self) -> list[tuple[Entry[T], bool]]:
        """Every registration with whether it is in use: entries first, then offers not selected,
        entries a selected offer stands in for, and contested ones."""
        used = self.entries()
        ids = {id(e) for e in used}
        unused = [e for by in self._offers.values() for e in by.values() if id(e) not in ids]
        unused += list(self._shadowed.values())
        unused += [e for contenders in self._contested.values() for e in contenders]
        return [(e, True) for e in used] + [(e, False) for e in unused]

    def shadowed(self, name: str) -> Entry[T] | None:
        """The entry a selected replacement stands in for, if any."""
        return self._shadowed.get(name)

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
            if name in self._contested:
                plugins = " and ".join(repr(e.plugin) for e in self._contested[name])
                raise PluginError(
                    f"{self.kind} {name!r} is registered by plugins {plugins}, so none of them is used.",
                    "uninstall one of them, or skip one with RDM_DISABLE_PLUGINS=NAME",
                ) from None
            raise UnknownNameError(self.kind, name, self._entries, self.unavailable_hint) from None

    def spec(self, name: str) -> Any:
        return self.get(name).spec

    def resolve(self, name: str) -> Any:
        return self.get(name).resolve()

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Build ``name`` by calling its factory with ``kwargs`` (output contracts installed)."""
        entry = self.get(name)
        built = entry.resolve()(**kwargs)
        return self._on_create(entry, built) if self._on_create is not None else built

    def check_args(
        self, name: str, args: dict[str, Any], where: str, origin: Callable[[str], str] | None = None
    ) -> None:
        """Check that ``args`` bind to the factory's signature, without calling it.

        The signature is read from the factory's source when possible, so checking does not
        import the plugin's heavy modules (see :meth:`Entry.parameters`).

        Args:
            name: the registry name.
            args: keyword arguments from the recipe.
            where: recipe location for the message (``generator``).
            origin: maps an argument name to a note on where it was set (``" (set in a.yaml)"``).

        Raises:
            RecipeError: naming the bad argument, where it was set and the accepted ones.
        """
        entry = self.get(name)
        params = entry.parameters()
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params):
            accepted = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            for key in args:
                if key not in accepted:
                    guess = close_matches(key, accepted)
                    did = f" Did you mean {guess[0]!r}?" if guess else ""
                    set_in = origin(key) if origin is not None else ""
                    raise RecipeError(
                        f"{where}: {self.kind} {name!r} has no argument {key!r}{set_in}.{did}",
                        f"use one of: {', '.join(accepted) or '(none)'}",
                    )
        if params is not None:
            from rdm_core.recipe.arg_types import first_type_problem

            wrong = first_type_problem(params, args)
            if wrong:
                set_in = origin(wrong[0]) if origin is not None else ""
                raise RecipeError(
                    f"{where}: {self.kind} {name!r} argument {wrong[0]!r}{set_in}: {wrong[1]}.",
                    f"give {wrong[0]} a value of the type its factory declares",
                )
        if entry.may_define("check_recipe_args"):
            factory = entry.resolve()
            if isinstance(factory, ArgsChecker):
                factory.check_recipe_args(dict(args), where)

    # -- used by the plugin host ------------------------------------------------------------
    def _registering(self, plugin: str, first_party: bool = True) -> None:
        self._current_plugin = plugin
        self._current_first_party = first_party


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
    "recipes": "recipe",
}
