"""rdm core runtime: interfaces, hooks, plugin host, registries, recipes, artifacts, CLI."""

from __future__ import annotations

from rdm_core.hookspecs import hookimpl
from rdm_core.plugins import get_host, registry

__version__ = "0.1.0"

__all__ = ["__version__", "get_host", "hookimpl", "registry"]
