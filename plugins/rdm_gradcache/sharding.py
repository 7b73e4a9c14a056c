"""Optional FSDP2 sharding of the trainable module, and full (unsharded) state dicts.

Without FSDP the module is replicated on every rank (no DDP wrapper, as in the paper; gradients are
averaged with one all-reduce per tensor). With ``train.fsdp`` the repeated blocks and then the
root are wrapped with ``torch.distributed.fsdp.fully_shard``; gradients are then reduce-scattered
(averaged) by FSDP itself, and checkpoints gather full tensors on every rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.errors import RecipeError


def _blocks(module: nn.Module) -> list[nn.Module]:
    """The members of every ``nn.ModuleList`` (transformer blocks, in diffusers and timm naming)."""
    found: list[nn.Module] = []
    for child in module.modules():
        if isinstance(child, nn.ModuleList):
            found.extend(child)
    return found


def shard(module: nn.Module, world_size: int) -> nn.Module:
    """Wrap ``module`` with FSDP2 (per block, then the root)."""
    if world_size < 2:
        raise RecipeError(
            "train.fsdp needs several processes (WORLD_SIZE > 1).",
            "launch with `torchrun --nproc-per-node K -m rdm_core train RECIPE`, or set train.fsdp: false",
        )
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:  # pragma: no cover - torch >= 2.6 has it
        raise RecipeError(f"this torch has no FSDP2 ({exc}).", "upgrade torch or set train.fsdp: false") from exc
    for block in _blocks(module):
        fully_shard(block)
    fully_shard(module)
    return module


def is_dtensor(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a DTensor (a parameter or gradient sharded by FSDP2)."""
    if not torch.distributed.is_available():
        return False
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch < 2.5 has no public DTensor, and no FSDP2 either
        return False
    return isinstance(tensor, DTensor)


def is_sharded(module: nn.Module) -> bool:
    return any(is_dtensor(p) for p in module.parameters())


def full_model_state(module: nn.Module) -> dict[str, Tensor]:
    """The complete state dict on CPU (all-gathers shards when FSDP is on)."""
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_full_model_state(module: nn.Module, state: dict[str, Tensor]) -> None:
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))
        return
    module.load_state_dict(state, strict=True)


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return optimizer.state_dict()


def load_full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(module, optimizer, state, options=StateDictOptions(full_state_dict=True))
        return
    optimizer.load_state_dict(state)
