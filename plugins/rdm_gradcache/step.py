"""One optimizer step around :func:`gradcache_backward`: average, clip, step (docs/method.md).

Kept separate from the trainer so the distributed equivalence test can run exactly the code the
trainer runs, on tiny modules, without a recipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.distributed import all_gather_with_grad, all_reduce_mean_
from rdm_gradcache.gradcache import EncodeFn, GatherFn, LossFn, gradcache_backward
from rdm_gradcache.sharding import is_dtensor


@dataclass
class StepResult:
    """What one optimizer step did."""

    loss: float
    grad_norm: float  # pre-clip global L2 norm of the averaged gradient (nan when skipped)
    skipped: bool
    logs: dict[str, Any] = field(default_factory=dict)


def grads_of(params: Iterable[nn.Parameter]) -> list[Tensor]:
    """The existing gradient tensors (parameters without a gradient are left out)."""
    return [p.grad for p in params if p.grad is not None]


def global_grad_norm(params: Sequence[nn.Parameter]) -> float:
    """L2 norm over every gradient, in float64 so the logged value does not depend on dtype."""
    total = 0.0
    for g in grads_of(params):
        local = g.full_tensor() if is_dtensor(g) else g
        total += float(local.detach().double().pow(2).sum())
    return math.sqrt(total)


def gradcache_step(
    params: Sequence[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    chunks: Sequence[Any],
    encode: EncodeFn,
    loss_fn: LossFn,
    *,
    grad_clip: float = 0.0,
    gather: GatherFn = all_gather_with_grad,
    average: Callable[[list[Tensor]], None] | None = all_reduce_mean_,
    before_chunk_backward: Callable[[int, bool], None] | None = None,
) -> StepResult:
    """zero grads -> GradCache backward (scale 1/chunks) -> average over ranks -> clip -> AdamW.

    Args:
        params: the trainable parameters (the optimizer's).
        optimizer: steps only when the loss is finite.
        chunks: this rank's chunks for the step.
        encode, loss_fn, gather: see :func:`gradcache_backward`.
        grad_clip: max global norm (0 disables clipping); the pre-clip norm is returned.
        average: cross-rank gradient mean (``None`` when FSDP already reduces gradients).
        before_chunk_backward: forwarded to :func:`gradcache_backward`.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, logs = gradcache_backward(
        chunks, encode, loss_fn, gather=gather, scale=1.0 / len(chunks), before_chunk_backward=before_chunk_backward
    )
    if not logs.get("finite", True):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(float(loss), float("nan"), True, logs)
    if average is not None:
        # Parameters that got no gradient on this rank still join the collective with zeros,
        # otherwise ranks would disagree on the number of all-reduce calls.
        for p in params:
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
        average(grads_of(params))
    norm = global_grad_norm(params)
    if not math.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(float(loss), norm, True, logs)
    if grad_clip and grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return StepResult(float(loss), norm, False, logs)
