"""Entry point of the rdm_flux2 plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.registry import CommandSpec


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add(
        "flux2-klein",
        "rdm_flux2.generator:Flux2KleinGenerator",
        help="FLUX.2 [klein] one-step generator (diffusers Flux2Transformer2DModel + AutoencoderKLFlux2)",
    )


@hookimpl
def rdm_register_commands(registry) -> None:
    registry.add(
        "context",
        "rdm_flux2.cli:configure",
        spec=CommandSpec(help="Text-context pools: `build RECIPE --prompts FILE -o POOL.npy`, `info POOL`."),
    )


@hookimpl
def rdm_register_stages(registry) -> None:
    registry.add("context", "rdm_flux2.run_stage:ContextStage", help="the generator's text-context pool")
