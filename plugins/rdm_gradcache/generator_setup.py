"""How the trainer prepares the generator it trains: the gradient-checkpointing switch and, across
ranks, identical replicas."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from rdm_core.capabilities import GradientCheckpointing, require


@runtime_checkable
class LibraryCheckpointing(Protocol):
    """A library model's own checkpointing switch (diffusers and transformers models have one)."""

    def enable_gradient_checkpointing(self) -> None: ...


def enable_gradient_checkpointing(generator: Any) -> None:
    """The generator's :class:`GradientCheckpointing` switch if it has one, else the switch of its
    trainable module when that is a library model (diffusers style); refused otherwise."""
    if isinstance(generator, GradientCheckpointing):
        generator.set_gradient_checkpointing(True)
        return
    module = generator.trainable_module()
    if isinstance(module, LibraryCheckpointing):
        module.enable_gradient_checkpointing()
        return
    require(
        generator,
        GradientCheckpointing,
        what=f"generator {type(generator).__name__}",
        needed_by="generator.gradient_checkpointing: true",
        fix="set generator.gradient_checkpointing: false (or add set_gradient_checkpointing to the generator)",
    )


def broadcast_module_(module: nn.Module) -> None:
    """Make every rank's replica identical to rank 0's (parameters and buffers)."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)
