"""What ``train.precision`` means, in one place.

- ``bf16``: float32 master weights, every forward of the generator under bf16 autocast (training,
  evaluation renders, teacher renders and sampling all run it the same way);
- ``fp32``: float32 weights and compute;
- ``fp64``: an exactness run: the generator's weights AND the frozen encoders are cast to float64,
  so the whole differentiable path from noise to features is float64.

Frozen encoders compute in :func:`encoder_compute_dtype` of their own weights, so the trainer
switches them to float64 by casting them, and nothing else needs to know.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays unimported until a function needs it (``rdm validate`` is light)
    import torch
    from torch import nn


def generator_autocast(precision: str, device: Any) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when ``precision`` is ``bf16`` (as the trainer does); otherwise none.

    Args:
        precision: ``train.precision`` of the recipe (``bf16`` | ``fp32`` | ``fp64``).
        device: a torch device or its name.
    """
    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def encoder_compute_dtype(encoder: nn.Module) -> torch.dtype:
    """The dtype a frozen encoder casts its input images to: float64 when its weights are float64
    (an ``fp64`` exactness run cast it), float32 otherwise (bf16 runs use autocast, not bf16
    inputs: resizing and normalising stay float32)."""
    import torch

    first = next((p for p in encoder.parameters() if p.is_floating_point()), None)
    return torch.float64 if first is not None and first.dtype == torch.float64 else torch.float32
