"""Entry point of the rdm_references plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl  # noqa: F401
