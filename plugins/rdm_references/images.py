"""Image helpers shared by the data sources: find, decode, ADM centre-crop, tensor conversion.

The crop is the one the reference features were extracted with (guided-diffusion's
``center_crop_arr``): halve with a BOX filter while the short side is at least twice the target,
rescale the short side to the target with BICUBIC, then cut the centre square. Matching it
matters because the reference pool and the evaluation banks must see images the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from rdm_core.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image
    from torch import Tensor

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True for the suffixes rdm reads (case-insensitive: ``.JPEG`` counts)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under ``root`` (recursive), sorted by POSIX relative path for a stable order."""
    base = Path(root)
    found = [p for p in base.rglob("*") if p.is_file() and is_image_path(p)]
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


def adm_center_crop(image: Image, size: int) -> Image:
    """ADM centre crop of a PIL image to ``size`` x ``size`` (RGB).

    Args:
        image: any PIL image; converted to RGB first.
        size: output side in pixels.

    Returns:
        A ``size`` x ``size`` RGB PIL image.
    """
    from PIL import Image as PILImage

    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    img = image.convert("RGB")
    # Halving with BOX first is what makes large downscales alias-free and cheap.
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


def load_image(path: str | os.PathLike[str], size: int) -> Tensor:
    """Decode one file and ADM-crop it to ``(3, size, size)`` float32 in ``[0, 1]``.

    Raises:
        ArtifactError: the file is missing or not a decodable image.
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    p = Path(path)
    try:
        with PILImage.open(p) as img:
            img.load()
            return pil_to_tensor(adm_center_crop(img, size))
    except FileNotFoundError:
        raise ArtifactError(
            f"image {p} does not exist.", "restore the file, or rebuild the source list (the folder or JSONL changed)"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ArtifactError(
            f"image {p} cannot be decoded ({exc}).",
            "replace or delete the corrupt file and re-run `rdm reference build`",
        ) from exc


def load_images(paths: Sequence[str | os.PathLike[str]], size: int, workers: int = 4) -> Tensor:
    """Decode and crop several files in threads (PIL releases the GIL while decoding).

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


def resize_center(images: Tensor, size: int) -> Tensor:
    """Tensor analogue of the crop for rendered batches: scale the short side, cut the centre.

    Used for teacher renders, which are already ``[0,1]`` tensors; an exact-size batch is
    returned unchanged so that deterministic renders stay bit-identical.
    """
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    if h == size and w == size:
        return images
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = F.interpolate(images.float(), size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[..., top : top + size, left : left + size].clamp(0, 1)


def read_png(path: str | os.PathLike[str]) -> Tensor:
    """An image file as float32 ``(3, H, W)`` in ``[0, 1]``, without any resize."""
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        return pil_to_tensor(img)


def stat_token(path: str | os.PathLike[str]) -> str:
    """Cheap change token (size and mtime) used to skip re-hashing unchanged files."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"
