"""Counting what autograd keeps for a backward pass run under CUDA bf16 autocast, on the meta device.

``torch.autocast`` does not act on meta tensors, so ``rdm plan`` would count a bf16 decoder's
saved activations as if every op ran in bf16. Training runs it under autocast, where CUDA's
policy computes normalisations and softmax in fp32 (their inputs, and the activations that
follow them, are kept in fp32) and matmuls/convolutions in bf16. :class:`CudaAutocastPolicy`
applies that policy at the ``torch.nn.functional`` level, where autograd sees the casts, so
the saved-tensor count matches what a CUDA run keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

F = torch.nn.functional

# CUDA autocast: computed in fp32 (inputs cast up) / in bf16 (inputs cast down)
FP32_OPS = {F.group_norm, F.layer_norm, F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
BF16_OPS = {
    F.conv2d,
    F.conv3d,
    F.conv_transpose2d,
    F.linear,
    F.scaled_dot_product_attention,
    torch.matmul,
    torch.bmm,
    torch.baddbmm,
    torch.mm,
    torch.addmm,
}


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


class CudaAutocastPolicy(TorchFunctionMode):
    """Casts the inputs of the ops above as CUDA bf16 autocast would (any device, meta included)."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in FP32_OPS:
            return func(*_cast(args, torch.float32), **{k: _cast(v, torch.float32) for k, v in kwargs.items()})
        if func in BF16_OPS:
            return func(*_cast(args, torch.bfloat16), **{k: _cast(v, torch.bfloat16) for k, v in kwargs.items()})
        return func(*args, **kwargs)


def saved_bytes(run: Callable[[], Any], *, autocast: bool = True) -> int:
    """Bytes of the tensors autograd saves for backward while ``run()`` executes."""
    kept = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal kept
        kept += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        if autocast:
            with CudaAutocastPolicy():
                run()
        else:
            run()
    return kept
