"""Entry point of the rdm_wan plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add(
        "wan",
        "rdm_wan.generator:WanGenerator",
        help="Wan 2.1 text-to-video one-step generator (diffusers WanTransformer3DModel + AutoencoderKLWan)",
    )
