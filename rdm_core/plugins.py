"""The plugin host: discovers entry points of group ``rdm`` and fills the registries.

**First-party** plugins are the ones shipped in the distribution named ``rdm`` (the package
that provides ``rdm_core``): their entry points are loaded first, and their component names are
theirs. Everything else is third-party. An in-process plugin (:meth:`PluginHost.register_module`)
is first-party when its top-level package is one of the ``rdm`` distribution's plugin packages.

What can go wrong, and what the host does (every case is a :class:`PluginProblem`, shown by
``rdm plugins`` and printed as one line on stderr by every other command):

* a plugin fails to import, or one of its hooks raises: the plugin is ``failed``; the others
  load, and the names its hook registered before raising stay usable;
* a third-party entry point uses the name of a first-party one: it is ``refused`` (not loaded),
  and the first-party plugin is untouched; two third-party entry points sharing a name are both
  refused;
* a third-party plugin registers a component name another plugin holds: that registration alone
  is refused (see :mod:`rdm_core.registry`); replacing a shipped component takes
  ``replace=True`` in the plugin *and* ``plugins.replace`` in the recipe;
* a lazy factory string whose module or attribute does not exist (checked from source by
  ``rdm plugins``, by importing with ``rdm plugins --check``): the plugin is ``failed``.

Strict mode (``RDM_STRICT_PLUGINS=1`` or ``rdm --strict``, used in CI) turns the first problem
into a :class:`PluginError`, with the same text either way.

Environment:
    RDM_DISABLE_PLUGINS: comma-separated entry-point names to skip (``all`` skips every one).
    RDM_TRACE_PLUGINS: when set, print each load and hook call with its duration to stderr.
    RDM_STRICT_PLUGINS: when set, fail on the first plugin problem.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache, partial
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from rdm_core import hookspecs
from rdm_core.contracts import guard
from rdm_core.plugin_records import (
    FIRST_PARTY_DISTRIBUTION,
    PluginProblem,
    PluginRecord,
    canonical,
    short_error,
)
from rdm_core.registry import REGISTRY_KINDS, Entry, Registry

ENTRY_POINT_GROUP = "rdm"
CORE = "rdm"  # the plugin name listings show for core commands and the recipes in recipes/


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@lru_cache(maxsize=1)
def first_party_packages() -> frozenset[str]:
    """Top-level packages of the ``rdm`` distribution's plugins (and ``rdm_core``)."""
    packages = {"rdm_core"}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist  # None when the entry point comes from no distribution
        if dist is not None and canonical(dist.name) == FIRST_PARTY_DISTRIBUTION:
            packages.add(ep.value.split(":")[0].split(".")[0])
    return frozenset(packages)


class PluginHost:
    """Loads plugins and builds registries on demand.

    Args:
        strict: raise :class:`PluginError` on the first plugin problem.
        discover: load entry points (tests pass ``False`` and register modules by hand).
    """

    def __init__(self, *, strict: bool | None = None, discover: bool = True) -> None:
        self.strict = _flag("RDM_STRICT_PLUGINS") if strict is None else strict
        self.trace = _flag("RDM_TRACE_PLUGINS")
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._registries: dict[str, Registry] = {}
        self._selected: dict[str, str] = {}  # "kind.name" -> plugin whose offer is in use
        if discover:
            self.load_entry_points()

    # -- problems ---------------------------------------------------------------------------
    def _log(self, message: str) -> None:
        if self.trace:
            print(f"rdm-trace: {message}", file=sys.stderr)

    def report(self, record: PluginRecord, kind: str, problem: str, fix: str, *, strict: bool = True) -> None:
        """Record a problem on ``record`` (once); in strict mode (unless ``strict=False``) raise it."""
        found = PluginProblem(record.key, kind, problem, fix)
        if found in record.problems:
            return
        record.problems.append(found)
        if kind == "failed" or (kind == "refused" and record.status == "refused"):
            record.status = kind
        self._log(f"{record.key}: {found.line()}")
        if self.strict and strict:
            raise found.as_error()

    def _fail(self, record: PluginRecord, exc: BaseException, what: str) -> None:
        text, own_fix = short_error(exc)
        fix = own_fix or f"fix the plugin, or skip it with RDM_DISABLE_PLUGINS={record.name}"
        self.report(record, "failed", f"{record.describe()}: {what} failed: {text}", fix)

    def problems(self) -> list[PluginProblem]:
        """Every problem found so far, in load order."""
        return [p for r in self.ordered_records() for p in r.problems]

    # -- loading ----------------------------------------------------------------------------
    def _add_record(self, record: PluginRecord) -> PluginRecord:
        record.order = len(self.records)
        self.records[record.key] = record
        return record

    def ordered_records(self) -> list[PluginRecord]:
        return sorted(self.records.values(), key=lambda r: (not r.first_party, r.order))

    def load_entry_points(self) -> None:
        """Load every entry point of group ``rdm``: first-party first, then by name.

        An entry-point name used by several distributions loads only the first-party one (if
        any); the others are recorded as ``refused``.
        """
        disabled = {n.strip() for n in os.environ.get("RDM_DISABLE_PLUGINS", "").split(",") if n.strip()}
        points: dict[tuple[str, str], Any] = {}  # (name, distribution): the same one twice on sys.path counts once
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist  # None when the entry point comes from no distribution
            points.setdefault((ep.name, canonical(dist.name if dist else None)), ep)
        by_name: dict[str, list[PluginRecord]] = {}
        loading: list[tuple[PluginRecord, Any]] = []
        for (name, dist_name), ep in points.items():
            dist = ep.dist  # None when the entry point comes from no distribution
            record = PluginRecord(
                name=name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                first_party=dist_name == FIRST_PARTY_DISTRIBUTION,
            )
            by_name.setdefault(name, []).append(record)
            loading.append((record, ep))
        loading.sort(key=lambda pair: (not pair[0].first_party, pair[0].name, canonical(pair[0].distribution)))
        for record, ep in loading:
            rivals = [r for r in by_name[record.name] if r is not record]
            if rivals and not record.first_party:
                self._refuse_entry_point(record, rivals)
                continue
            self._add_record(record)
            if "all" in disabled or record.name in disabled:
                record.status = "disabled"
                self._log(f"plugin {record.name} disabled by RDM_DISABLE_PLUGINS")
                continue
            start = time.perf_counter()
            try:
                self._register(ep.load(), record)
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(record, exc, f"import of {ep.value!r}")
                continue
            self._log(f"loaded plugin {record.name} ({ep.value}) in {1e3 * (time.perf_counter() - start):.1f} ms")
        self._check_pending()

    def _refuse_entry_point(self, record: PluginRecord, rivals: list[PluginRecord]) -> None:
        record.key = f"{record.name} ({record.distribution})"
        record.status = "refused"
        self._add_record(record)
        first = [r for r in rivals if r.first_party]
        if first:
            problem = (
                f"{record.describe()} uses the entry-point name of first-party plugin {record.name!r}; "
                "it is not loaded, and the first-party plugin is used."
            )
        else:
            others = ", ".join(sorted(str(r.distribution) for r in rivals))
            problem = f"{record.describe()} shares its entry-point name with distribution(s) {others}; none is loaded."
        fix = f"rename the entry point in {record.distribution}'s pyproject.toml ([project.entry-points.rdm])"
        self.report(record, "refused", problem, fix)

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or "?"
            self.pm.unregister(exc.plugin)
            if name in self.records:
                self._fail(self.records[name], exc, "hook validation")

    def register_module(
        self, module: ModuleType | object, name: str, *, version: str | None = None, first_party: bool | None = None
    ) -> None:
        """Register an in-process plugin (tests and notebooks); call before using registries.

        Args:
            module: an object with ``rdm_register_*`` hook implementations.
            name: the plugin's name (as an entry-point name would be).
            version: shown by ``rdm plugins``.
            first_party: default: whether the module's top-level package belongs to the ``rdm``
                distribution.
        """
        # an in-process plugin may be a module, a namespace or any object: name it as best we can
        module_name = getattr(module, "__name__", repr(module))
        if first_party is None:
            first_party = module_name.split(".")[0] in first_party_packages()
        record = PluginRecord(
            name=name, module=module_name, version=version, source="in-process", first_party=first_party
        )
        if name in self.records:
            record.key = f"{name} (in-process)"
            self._add_record(record)
            self.report(
                record,
                "refused",
                f"in-process plugin {name!r} reuses the name of an already registered plugin; it is not loaded.",
                "register it under another name",
            )
            return
        self._add_record(record)
        try:
            self._register(module, record)
        except Exception as exc:
            self._fail(record, exc, "register")
        self._check_pending()
        self._registries.clear()  # rebuilt with the new plugin on next access

    def _register(self, module: Any, record: PluginRecord) -> None:
        self.pm.register(module, name=record.key)
        record.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(module) or [])

    # -- registries -------------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        """The filled registry for ``kind`` (``encoders``, ``generators``, ...)."""
        if kind not in REGISTRY_KINDS:
            raise KeyError(f"unknown registry kind {kind!r}; kinds: {', '.join(REGISTRY_KINDS)}")
        if kind not in self._registries:
            self._registries[kind] = self._fill(kind)
        return self._registries[kind]

    def fill_all(self) -> None:
        """Call every registration hook now (cheap), so every problem is known."""
        for kind in REGISTRY_KINDS:
            self.registry(kind)

    def _fill(self, kind: str) -> Registry:
        registry: Registry = Registry(REGISTRY_KINDS[kind], on_create=partial(guard, kind))
        self._add_core_names(kind, registry)
        caller = getattr(self.pm.hook, f"rdm_register_{kind}")
        calls = []
        for impl in caller.get_hookimpls():
            record = self.records.get(self.pm.get_name(impl.plugin) or "?")
            calls.append(((not record.first_party, record.order) if record else (True, 1 << 30), impl, record))
        for _, impl, record in sorted(calls, key=lambda c: c[0]):
            name = record.key if record else (self.pm.get_name(impl.plugin) or "?")
            registry._registering(name, record.first_party if record else False)
            start = time.perf_counter()
            try:
                impl.function(registry=registry)
            except Exception as exc:
                if record is None:
                    raise
                self._fail(record, exc, f"rdm_register_{kind}")
            self._log(f"{name}.rdm_register_{kind} in {1e3 * (time.perf_counter() - start):.1f} ms")
        self._report_refusals(registry, kind)
        for key, plugin in self._selected.items():
            selected_kind, _, selected_name = key.partition(".")
            if selected_kind == kind:
                registry.select(selected_name, plugin)
        broken = [r.key for r in self.records.values() if r.status == "failed"]
        if broken:
            registry.unavailable_hint = (
                f"check `rdm plugins`: plugin(s) {', '.join(broken)} failed to load and may provide it"
            )
        return registry

    @staticmethod
    def _add_core_names(kind: str, registry: Registry) -> None:
        """Core commands and the recipes shipped in ``recipes/`` hold their names like first-party ones."""
        registry._registering(CORE, first_party=True)
        if kind == "recipes":
            from rdm_core.recipe.load import list_recipes, shipped_recipe_name

            for path in list_recipes():
                registry.add(shipped_recipe_name(path), str(path))
        elif kind == "commands":
            from rdm_core.cli.main import CORE_COMMANDS

            for name, (target, help_text) in CORE_COMMANDS.items():
                registry.add(name, target, help=help_text)

    def _describe_plugin(self, key: str) -> str:
        if key == CORE:
            return f"rdm itself (distribution {FIRST_PARTY_DISTRIBUTION})"
        record = self.records.get(key)
        return record.describe() if record else f"plugin {key!r}"

    def _report_refusals(self, registry: Registry, kind: str) -> None:
        for refusal in registry.refusals:
            record = self.records.get(refusal.refused)
            if record is None:
                continue
            what = f"{refusal.kind} {refusal.name!r}"
            if refusal.kept is not None:
                held_by = self._describe_plugin(refusal.kept)
                problem = (
                    f"{record.describe()} registers {what}, which {held_by} already provides; "
                    f"that registration is refused (the rest of {record.name!r} loads)."
                )
                fix = (
                    f"rename it in {record.distribution or record.name}; to replace it on purpose, register it "
                    f"with replace=True and select it in the recipe: `plugins: {{replace: "
                    f"{{{kind}.{refusal.name}: {record.name}}}}}`"
                )
            else:
                others = [
                    self.records[r.refused].describe()
                    for r in registry.refusals
                    if r.name == refusal.name and r.refused != refusal.refused and r.refused in self.records
                ]
                problem = f"{record.describe()} and {', '.join(others)} all register {what}; none of them is used."
                fix = f"uninstall one of them, or skip one with RDM_DISABLE_PLUGINS={record.name}"
            self.report(record, "refused", problem, fix)

    # -- replacements -------------------------------------------------------------------------
    def select_replacements(self, chosen: Mapping[str, str]) -> None:
        """Use the replacements a recipe selects: ``{"encoders.digits_cnn": "my_plugin"}``.

        Replaces any earlier selection (an empty mapping means: no replacement in use).

        Raises:
            RecipeError: a key that is not ``kind.name`` or a plugin that offers no replacement.
        """
        from rdm_core.errors import RecipeError

        for registry in self._registries.values():
            registry.unselect_all()
        self._selected = {}
        for key, plugin in chosen.items():
            kind, _, name = str(key).partition(".")
            if kind not in REGISTRY_KINDS or not name:
                raise RecipeError(
                    f"plugins.replace: {key!r} is not KIND.NAME.",
                    f"write e.g. encoders.digits_cnn: PLUGIN; kinds: {', '.join(REGISTRY_KINDS)}",
                )
            self.registry(kind).select(name, str(plugin))
            self._selected[f"{kind}.{name}"] = str(plugin)

    # -- factories ----------------------------------------------------------------------------
    def all_entries(self, kinds: Iterable[str] | None = None) -> list[tuple[str, Entry]]:
        """``(kind, entry)`` for every registration (in use or not), by kind."""
        return [(kind, e) for kind in kinds or REGISTRY_KINDS for e, _ in self.registry(kind).registrations()]

    def disabled_provider(self, kind: str, name: str) -> str | None:
        """The disabled plugin that would register ``name`` in registry ``kind``, if any (see
        :func:`rdm_core.plugin_checks.disabled_provider`)."""
        from rdm_core.plugin_checks import disabled_provider

        return disabled_provider(self, kind, name)


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def current_host() -> PluginHost | None:
    """The process-wide host if one exists (never creates one)."""
    return _HOST


def strict_from_env() -> bool:
    """Whether ``RDM_STRICT_PLUGINS`` asks for strict mode."""
    return _flag("RDM_STRICT_PLUGINS")


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests use this to install a host with test plugins)."""
    global _HOST
    _HOST = host


def use_recipe_replacements(chosen: Mapping[str, str]) -> None:
    """Select a loaded recipe's ``plugins.replace`` in the process-wide host.

    An empty mapping clears an earlier selection (and creates no host when there is none).
    """
    if chosen or (_HOST is not None and _HOST._selected):
        get_host().select_replacements(chosen)


def registry(kind: str) -> Registry:
    """Shortcut: ``registry("encoders")`` on the process-wide host."""
    return get_host().registry(kind)
