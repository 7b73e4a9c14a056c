"""Entry point of the rdm_gradcache plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl  # noqa: F401
