"""Entry point of the rdm_pmf plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add(
        "pmf",
        "rdm_pmf.generator:PMFGenerator",
        help="class-conditional one-step pixel MeanFlow (pMF-H ImageNet 256 warm start; presets pmf-t..pmf-h)",
    )
