"""Entry point of the rdm_flux1 plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl  # noqa: F401
