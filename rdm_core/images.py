"""Image outputs shared by every command: uint8 conversion, PNG files and sample grids.

One convention everywhere (training grids, ``rdm generate``, evaluation renders, teacher caches):
``[0,1]`` floats become ``round(x * 255)`` uint8, and every PNG is written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """``[0,1]`` floats -> uint8 ``round(x * 255)``, shape kept (the PickScore/GenEval convention)."""
    import torch

    return (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def frames_side_by_side(x: Tensor) -> Tensor:
    """Video ``(B,3,F,H,W)`` -> ``(B,3,H,F*W)`` (frames left to right); images pass through."""
    if x.dim() == 5:
        b, c, f, h, w = x.shape
        return x.permute(0, 1, 3, 2, 4).reshape(b, c, h, f * w)
    return x


def hwc_uint8(images: Tensor) -> Any:
    """``(B,3,H,W)`` / ``(3,H,W)`` in ``[0,1]`` (or video) -> numpy uint8 ``(..., H, W, 3)``."""
    x = frames_side_by_side(images)
    return to_uint8(x).cpu().movedim(-3, -1).numpy()


def save_png(image: Tensor | Any, path: str | os.PathLike[str]) -> Path:
    """Write one image, ``(3,H,W)`` float tensor in ``[0,1]`` or uint8 numpy ``(H,W,3)``, as PNG atomically."""
    import numpy as np
    from PIL import Image

    array = image if isinstance(image, np.ndarray) else hwc_uint8(image)
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="RGB").save(tmp, format="PNG")
    return Path(path)


def grid_array(images: Any, *, columns: int | None = None, pad: int = 2) -> Any:
    """Tile uint8 ``(B,H,W,3)`` images into one near-square uint8 array on a white background."""
    import numpy as np

    n, h, w, _ = images.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = images[i]
    return grid


def save_grid(
    images: Tensor | Any, path: str | os.PathLike[str], *, columns: int | None = None, pad: int = 2, min_side: int = 512
) -> Path:
    """Tile images (float ``[0,1]`` tensors ``(B,3,H,W)``/video, or a uint8 numpy ``(B,H,W,3)``) into one PNG.

    Grids of tiny images (the CPU demo's 16 px digits) are upscaled by an integer factor to at
    least ``min_side`` pixels so the picture is viewable.
    """
    import numpy as np
    from PIL import Image

    array = images if isinstance(images, np.ndarray) else hwc_uint8(images)
    grid = Image.fromarray(grid_array(array, columns=columns, pad=pad), mode="RGB")
    if max(grid.size) < min_side:
        factor = max(1, min_side // max(grid.size))
        grid = grid.resize((grid.size[0] * factor, grid.size[1] * factor), Image.NEAREST)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return Path(path)
