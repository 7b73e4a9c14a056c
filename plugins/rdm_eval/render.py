"""Images for evaluation: seeded one-step renders, image folders, uint8 PNG output.

Features are extracted with :class:`rdm_core.battery.Battery` (the same facade reference
building uses), so evaluation and references see every encoder the same way.

Render protocol (SW_r14, docs/method.md): ONE generator seeded ``seed`` on the device draws, per batch, the
noise and then the conditions, so a render is reproducible and matched across checkpoints
(same noise and labels for model A and model B).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import Conditions, Generator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def render_batches(
    generator: Generator,
    num_samples: int,
    batch_size: int,
    *,
    seed: int = 0,
    device: Any = "cpu",
    precision: str = "fp32",
) -> Iterator[tuple[Tensor, Conditions]]:
    """Yield ``([0,1] images, conditions)`` batches of a seeded one-step render, without grad.

    Per batch the single seeded generator draws noise ``(b, *noise_shape)`` first, then the
    conditions through ``generator.sample_conditions(b, rng)``. The generator runs under the
    autocast of ``precision`` (the recipe's ``train.precision``), as in training.
    """
    import torch

    from rdm_core.interfaces import as_image_batch, iter_chunks
    from rdm_core.precision import generator_autocast

    if num_samples <= 0 or batch_size <= 0:
        raise ValueError(f"num_samples and batch_size must be positive (got {num_samples}, {batch_size})")
    rng = torch.Generator(device=device).manual_seed(seed)
    module = generator.trainable_module()
    was_training = module.training
    module.eval()
    try:
        for start, stop in iter_chunks(num_samples, batch_size):
            b = stop - start
            noise = torch.randn((b, *generator.noise_shape()), generator=rng, device=device)
            cond = generator.sample_conditions(b, rng).to(device)
            with torch.no_grad(), generator_autocast(precision, device):
                images = as_image_batch(generator.generate(noise, cond)).float()
            yield images, cond
    finally:
        module.train(was_training)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder``, recursively, in sorted order (non-images ignored)."""
    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(f"image folder {root} does not exist.", "pass --images DIR with PNG/JPEG files")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ArtifactError(
            f"{root} contains no images ({', '.join(IMAGE_SUFFIXES)}).",
            "point --images at a folder of generated samples",
        )
    return files


def load_image(path: Path, resolution: int) -> Tensor:
    """One image as ``[0,1]`` (3, R, R) float32: RGB, centre-cropped to a square, resized (bicubic)."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        if w != h:
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
        if side != resolution:
            im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0


def folder_batches(files: list[Path], batch_size: int, resolution: int) -> Iterator[Tensor]:
    """``[0,1]`` image batches read from ``files`` in order."""
    import torch

    for start in range(0, len(files), batch_size):
        yield torch.stack([load_image(p, resolution) for p in files[start : start + batch_size]])
