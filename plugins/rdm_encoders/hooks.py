"""Entry point of the rdm_encoders plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_encoders.specs import FACTORIES, PANEL


@hookimpl
def rdm_register_encoders(registry) -> None:  # type: ignore[no-untyped-def]
    """Register the 14-encoder panel in panel order (10 training, then 4 held-out)."""
    for spec in PANEL:
        registry.add(
            spec.name,
            FACTORIES[spec.name],
            spec=spec,
            help=f"{spec.split} encoder, {spec.dim}-d {spec.pooling} of {spec.library}:{spec.model_id}",
        )
