"""Entry point of the rdm_gradcache plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.registry import CommandSpec


@hookimpl
def rdm_register_trainers(registry) -> None:
    registry.add(
        "gradcache",
        "rdm_gradcache.trainer:gradcache_trainer",
        help="exact full-batch GradCache trainer (single process or torchrun)",
    )


@hookimpl
def rdm_register_commands(registry) -> None:
    registry.add(
        "plan",
        "rdm_gradcache.plan_cmd:configure",
        spec=CommandSpec(help="Per-GPU memory and time per step of a recipe on N GPUs (no weights)."),
    )
