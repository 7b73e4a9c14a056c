"""Image files in and out, shared by every command.

Out: one convention everywhere (training grids, ``rdm generate``, evaluation renders, teacher
caches): ``[0,1]`` floats become ``round(x * 255)`` uint8, and every PNG is written atomically.

In: one way to read image files and one crop (the ADM centre crop) for every image that reaches
an encoder from a file or at another size: reference sources, ``rdm eval --images`` and teacher
renders.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import atomic_path
from rdm_core.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image
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


# -- reading ----------------------------------------------------------------------------------
# One way in for image files, whoever reads them (reference sources, `rdm eval --images`, teacher
# renders of another size): decode, convert to RGB, and the ADM centre crop that reference
# features are extracted with (guided-diffusion's ``center_crop_arr``). Real images, evaluated
# folders and renders therefore all reach the encoders through the same pixels-to-tensor path.

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True for the suffixes rdm reads (case-insensitive: ``.JPEG`` counts)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under ``root`` (recursive), sorted by POSIX relative path for a stable order."""
    base = Path(root)
    found = [p for p in base.rglob("*") if p.is_file() and is_image_path(p)]
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


def adm_center_crop(image: Image, size: int) -> Image:
    """The ADM centre crop of a PIL image to ``size`` x ``size`` RGB.

    Halve with a BOX filter while the short side is at least twice ``size`` (alias-free and
    cheap for large downscales), rescale the short side to ``size`` with BICUBIC, then cut the
    centre square.
    """
    from PIL import Image as PILImage

    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    img = image.convert("RGB")
    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=PILImage.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=PILImage.BICUBIC)
    left = (img.size[0] - size) // 2
    top = (img.size[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


def pil_to_tensor(image: Image) -> Tensor:
    """RGB PIL image -> float32 ``(3, H, W)`` in ``[0, 1]``."""
    import numpy as np
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _decode(path: str | os.PathLike[str], size: int | None) -> Tensor:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    p = Path(path)
    try:
        with PILImage.open(p) as img:
            img.load()
            return pil_to_tensor(img if size is None else adm_center_crop(img, size))
    except FileNotFoundError:
        raise ArtifactError(
            f"image {p} does not exist.", "restore the file, or rebuild the source list (the folder or JSONL changed)"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ArtifactError(
            f"image {p} cannot be decoded ({exc}).", "replace or delete the corrupt file and run the command again"
        ) from exc


def load_image(path: str | os.PathLike[str], size: int) -> Tensor:
    """Decode one file and ADM-crop it to ``(3, size, size)`` float32 in ``[0, 1]``.

    Raises:
        ArtifactError: the file is missing or not a decodable image.
    """
    return _decode(path, int(size))


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """An image file as float32 ``(3, H, W)`` in ``[0, 1]``, at its own size (no crop)."""
    return _decode(path, None)


def load_images(paths: Sequence[str | os.PathLike[str]], size: int, workers: int = 4) -> Tensor:
    """Decode and crop several files, in threads (PIL releases the GIL while decoding).

    Returns:
        ``(len(paths), 3, size, size)`` float32 in ``[0, 1]``, in the order of ``paths``.
    """
    import torch

    if not paths:
        return torch.empty(0, 3, size, size)
    if workers <= 1 or len(paths) == 1:
        return torch.stack([load_image(p, size) for p in paths])
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return torch.stack(list(pool.map(lambda p: load_image(p, size), paths)))


def crop_images(images: Tensor, size: int) -> Tensor:
    """The ADM crop for ``[0,1]`` image tensors ``(B, 3, H, W)`` (renders of another size).

    An exact-size batch is returned unchanged (deterministic renders stay bit-identical); any
    other goes through uint8 and :func:`adm_center_crop`, exactly like the same render saved as
    a PNG and read back by a folder source.
    """
    import torch
    from PIL import Image as PILImage

    if images.shape[-2:] == (size, size):
        return images
    arrays = hwc_uint8(images)
    return torch.stack([pil_to_tensor(adm_center_crop(PILImage.fromarray(a, mode="RGB"), size)) for a in arrays])
