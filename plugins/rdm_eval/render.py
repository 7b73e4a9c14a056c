"""Images for evaluation: seeded one-step renders, image folders, uint8 PNG output.

Features are extracted with :class:`rdm_core.battery.Battery` (the same facade reference
building uses), so evaluation and references see every encoder the same way.

Render protocol (SW_r14, docs/method.md): ONE generator seeded ``seed`` on the device draws, per
batch, the noise and then the conditions, so a render is reproducible and matched across
checkpoints (same noise and labels for model A and model B). Image folders are read with
:mod:`rdm_core.images`, through the same ADM centre crop as the reference images.
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


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The images of ``rdm eval --images DIR``, in the order reference sources list them.

    Raises:
        ArtifactError: the folder does not exist or holds no image.
    """
    from rdm_core.images import IMAGE_SUFFIXES, list_images

    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(f"image folder {root} does not exist.", "pass --images DIR with PNG/JPEG files")
    files = list_images(root)
    if not files:
        raise ArtifactError(
            f"{root} contains no images ({', '.join(IMAGE_SUFFIXES)}).",
            "point --images at a folder of generated samples",
        )
    return files


def folder_batches(files: list[Path], batch_size: int, resolution: int) -> Iterator[Tensor]:
    """``[0,1]`` image batches read from ``files`` in order, with the reference sources' ADM crop."""
    from rdm_core.images import load_images

    for start in range(0, len(files), batch_size):
        yield load_images(files[start : start + batch_size], resolution)
