"""Entry point of the rdm_flux1 plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add(
        "flux1",
        "rdm_flux1.generator:Flux1Generator",
        help="FLUX.1 [schnell|dev] one-step generator (diffusers FluxTransformer2DModel + AutoencoderKL)",
    )
