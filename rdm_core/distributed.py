"""torch.distributed helpers shared by the trainer and the reference builder.

Launch is always ``torchrun`` (no home-made launcher). Without ``WORLD_SIZE`` in the environment
everything degrades to a single process and the collectives are identities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from rdm_core.devices import resolve_device
from rdm_core.errors import RdmError

# What torchrun sets for every process; env:// initialisation needs all of them.
RENDEZVOUS_ENV = ("RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Who this process is: rank, world size and the device it owns."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str = "auto") -> DistContext:
    """Initialise the process group from torchrun's environment (NCCL on GPU, gloo on CPU).

    Raises:
        RdmError: ``WORLD_SIZE`` > 1 without the rest of torchrun's variables, or values that
            are not integers (a launch that did not go through torchrun).
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world > 1 and not dist.is_initialized():
        missing = [k for k in RENDEZVOUS_ENV if not os.environ.get(k)]
        if missing:
            raise RdmError(
                f"WORLD_SIZE={world} is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                "a multi-process run needs torchrun's rendezvous variables.",
                "launch with `torchrun --nproc-per-node N -m rdm_core ...`, or unset WORLD_SIZE for one process",
            )
        if not 0 <= rank < world:
            raise RdmError(f"RANK={rank} is outside WORLD_SIZE={world}.", "launch with torchrun, which sets both")
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise RdmError(
            f"environment variable {name}={text!r} is not an integer.", f"unset {name} or launch with torchrun"
        ) from None


def current_context(device: str = "auto") -> DistContext:
    """The context of an already initialised group (or a single-process one)."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return DistContext(rank, world, local, resolve_device(device, local))
    return DistContext(device=resolve_device(device, 0))


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _sync_stream(t: torch.Tensor) -> None:
    # Kernels queued on the compute stream (bf16 sampler chains) can otherwise race NCCL.
    if t.is_cuda:
        torch.cuda.current_stream(t.device).synchronize()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 that keeps the local slot's autograd graph.

    Backward returns the slice of the upstream gradient that belongs to the local rows. Every
    rank computes the same loss on the gathered rows, so no gradient reduction is needed here;
    parameter gradients are averaged after backward.
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        sizes = torch.tensor([local.shape[0]], device=local.device)
        all_sizes = [torch.zeros_like(sizes) for _ in range(world)]
        _sync_stream(local)
        dist.all_gather(all_sizes, sizes)
        counts = [int(s.item()) for s in all_sizes]
        if len(set(counts)) != 1:
            raise RuntimeError(f"all_gather_with_grad needs equal rows on every rank, got {counts}")
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous())
        parts[rank] = local
        ctx.rank, ctx.rows = rank, local.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows (rank order); gradients flow back to the local rows."""
    if not _active():
        return local
    return _GatherWithGrad.apply(local)


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """In place: replace each tensor by its mean over ranks (one collective per tensor)."""
    if not _active():
        return
    world = dist.get_world_size()
    for t in tensors:
        _sync_stream(t)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world)


def barrier() -> None:
    if _active():
        dist.barrier()


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
