"""The plugin host: discovers entry points of group ``rdm`` and fills the registries.

Every plugin is loaded and called in isolation: one that fails to import, or whose hook raises,
is recorded with its error (``rdm plugins`` shows it) while the others still load. Strict mode
(``RDM_STRICT_PLUGINS=1`` or ``rdm --strict``, used in CI) turns any failure into an error.

Environment:
    RDM_DISABLE_PLUGINS: comma-separated entry-point names to skip (``all`` skips every one).
    RDM_TRACE_PLUGINS: when set, print each load and hook call with its duration to stderr.
    RDM_STRICT_PLUGINS: when set, fail on the first broken plugin.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from rdm_core import hookspecs
from rdm_core.errors import PluginError
from rdm_core.registry import REGISTRY_KINDS, Registry

ENTRY_POINT_GROUP = "rdm"


@dataclass
class PluginRecord:
    """What ``rdm plugins`` reports about one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    source: str = "entry point"  # entry point | in-process

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
            "source": self.source,
        }


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _short_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({os.path.basename(frame[0].filename)}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class PluginHost:
    """Loads plugins and builds registries on demand.

    Args:
        strict: raise :class:`PluginError` on the first plugin failure.
        discover: load entry points (tests pass ``False`` and register modules by hand).
    """

    def __init__(self, *, strict: bool | None = None, discover: bool = True) -> None:
        self.strict = _flag("RDM_STRICT_PLUGINS") if strict is None else strict
        self.trace = _flag("RDM_TRACE_PLUGINS")
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._registries: dict[str, Registry] = {}
        if discover:
            self.load_entry_points()

    # -- loading ----------------------------------------------------------------------------
    def _log(self, message: str) -> None:
        if self.trace:
            print(f"rdm-trace: {message}", file=sys.stderr)

    def _fail(self, record: PluginRecord, exc: BaseException, what: str) -> None:
        record.status = "failed"
        record.error = f"{what}: {_short_error(exc)}"
        self._log(f"plugin {record.name} failed: {record.error}")
        if self.strict:
            raise PluginError(
                f"plugin {record.name!r} ({record.module}) failed: {record.error}",
                f"fix the plugin, or skip it with RDM_DISABLE_PLUGINS={record.name}",
            ) from exc

    def load_entry_points(self) -> None:
        disabled = {n.strip() for n in os.environ.get("RDM_DISABLE_PLUGINS", "").split(",") if n.strip()}
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.records:  # the same distribution installed twice on sys.path
                continue
            dist = ep.dist  # None when the entry point comes from no distribution
            record = PluginRecord(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self.records[ep.name] = record
            if "all" in disabled or ep.name in disabled:
                record.status = "disabled"
                self._log(f"plugin {ep.name} disabled by RDM_DISABLE_PLUGINS")
                continue
            start = time.perf_counter()
            try:
                module = ep.load()
                self._register(module, record)
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(record, exc, "import")
                continue
            self._log(f"loaded plugin {ep.name} ({ep.value}) in {1e3 * (time.perf_counter() - start):.1f} ms")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or "?"
            if name in self.records:
                self._fail(self.records[name], exc, "hook validation")
                self.pm.unregister(exc.plugin)

    def register_module(self, module: ModuleType | object, name: str, *, version: str | None = None) -> None:
        """Register an in-process plugin (tests and notebooks); call before using registries."""
        # an in-process plugin may be a module, a namespace or any object: name it as best we can
        record = PluginRecord(
            name=name, module=getattr(module, "__name__", repr(module)), version=version, source="in-process"
        )
        self.records[name] = record
        try:
            self._register(module, record)
            self.pm.check_pending()
        except Exception as exc:
            self._fail(record, exc, "register")
        self._registries.clear()  # rebuilt with the new plugin on next access

    def _register(self, module: Any, record: PluginRecord) -> None:
        self.pm.register(module, name=record.name)
        record.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(module) or [])

    # -- registries -------------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        """The filled registry for ``kind`` (``encoders``, ``generators``, ...)."""
        if kind not in REGISTRY_KINDS:
            raise KeyError(f"unknown registry kind {kind!r}; kinds: {', '.join(REGISTRY_KINDS)}")
        if kind not in self._registries:
            self._registries[kind] = self._fill(kind)
        return self._registries[kind]

    def _fill(self, kind: str) -> Registry:
        registry: Registry = Registry(REGISTRY_KINDS[kind])
        caller = getattr(self.pm.hook, f"rdm_register_{kind}")
        for impl in caller.get_hookimpls():
            name = self.pm.get_name(impl.plugin) or "?"
            record = self.records.get(name)
            if record is not None and record.status != "loaded":
                continue
            registry._registering(name)
            start = time.perf_counter()
            try:
                impl.function(registry=registry)
            except Exception as exc:
                if record is None:
                    raise
                self._fail(record, exc, f"rdm_register_{kind}")
            self._log(f"{name}.rdm_register_{kind} in {1e3 * (time.perf_counter() - start):.1f} ms")
        broken = [r.name for r in self.records.values() if r.status == "failed"]
        if broken:
            registry.unavailable_hint = (
                f"check `rdm plugins`: plugin(s) {', '.join(broken)} failed to load and may provide it"
            )
        return registry

    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    def disabled_provider(self, kind: str, name: str) -> str | None:
        """The disabled plugin that would register ``name`` in registry ``kind``, if any.

        Only called on the error path of a missing name, to say which plugin to re-enable: each
        disabled plugin's module is imported and its hook run into a scratch registry that
        nothing else sees.
        """
        import importlib

        for record in self.records.values():
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


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests use this to install a host with test plugins)."""
    global _HOST
    _HOST = host


def registry(kind: str) -> Registry:
    """Shortcut: ``registry("encoders")`` on the process-wide host."""
    return get_host().registry(kind)
