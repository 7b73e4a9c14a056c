"""The one autocast rule for every forward of a trained generator: training, evaluation renders,
teacher renders and sampling all run it the same way (``train.precision``)."""

from __future__ import annotations

import contextlib
from typing import Any


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
