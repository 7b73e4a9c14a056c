"""The ``digits`` image source: scikit-learn's bundled 8x8 handwritten digits.

1797 real images ship inside scikit-learn (no download). Values 0..16 become ``[0, 1]``; the grey
image is upsampled (bilinear) to ``resolution`` and replicated to three channels so every rdm
encoder sees an ordinary RGB batch. A stratified, seeded split gives disjoint ``train`` and
``val`` parts that are identical on every machine; each part is listed in a seeded shuffled
order, so any prefix of it is a uniform sample.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

NATIVE = 8  # the digits are 8 x 8 pixels
MAX_VALUE = 16.0  # scikit-learn stores ink as integers 0..16
NUM_CLASSES = 10
SPLITS = ("train", "val", "all")


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8) in 0..16, labels int64 (1797,)), loaded once per process."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    return images.round().astype(np.uint8), np.asarray(bunch.target, dtype=np.int64)


def split_indices(split: str, val_fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """Sorted dataset indices of ``split`` (``train``, ``val`` or ``all``).

    The split is stratified by class (every digit has the same share in both parts) and fixed by
    ``seed``: a per-class permutation from ``numpy.random.default_rng(seed)``.

    Raises:
        RecipeError: unknown split or a fraction outside (0, 1).
    """
    if split not in SPLITS:
        raise RecipeError(f"digits split {split!r} is unknown.", f"use one of: {', '.join(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        raise RecipeError(f"digits val_fraction {val_fraction} is outside (0, 1).", "use e.g. 0.25")
    _, labels = _raw()
    if split == "all":
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(labels == c)
        take = round(val_fraction * len(members))
        val.append(rng.permutation(members)[:take])
    val_idx = np.sort(np.concatenate(val))
    if split == "val":
        return val_idx
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask)


def upsample(grey: Tensor, resolution: int) -> Tensor:
    """``(B, 1, h, w)`` -> ``(B, 1, R, R)`` bilinear; shared by the data and the generator.

    Bilinear upsampling is a convex combination of input pixels, so ``[0, 1]`` stays ``[0, 1]``.
    """
    import torch.nn.functional as F

    if grey.shape[-1] == resolution and grey.shape[-2] == resolution:
        return grey
    return F.interpolate(grey, size=(resolution, resolution), mode="bilinear", align_corners=False)


class DigitsSource:
    """scikit-learn digits as an :class:`rdm_core.interfaces.ImageSource`.

    Args:
        split: ``train``, ``val`` or ``all``.
        resolution: output side length (the 8x8 digits are upsampled bilinearly).
        val_fraction: share of every class held out as ``val``.
        seed: seed of the split.
        captions: caption every image with its class prompt (``the digit k``), for the
            class-coupled joint feature of ``recipes/digits-classcond.yaml``.
    """

    def __init__(
        self,
        split: str = "train",
        resolution: int = 16,
        val_fraction: float = 0.25,
        seed: int = 0,
        captions: bool = False,
    ) -> None:
        if int(resolution) < NATIVE:
            raise RecipeError(
                f"digits resolution {resolution} is below the native {NATIVE} px.",
                f"use a resolution >= {NATIVE} (16 is the demo default)",
            )
        self.split = split
        self.resolution = int(resolution)
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        self.with_captions = bool(captions)
        # list the split in a seeded shuffled order: banks and evaluations that keep "the first N"
        # rows then hold a uniform sample (scikit-learn orders the digits by writer, so a sorted
        # prefix is a handful of writers and biases every sliced-Wasserstein ratio)
        order = np.random.default_rng([self.seed, 1]).permutation(split_indices(split, self.val_fraction, self.seed))
        self.indices = order
        raw, labels = _raw()
        self._raw = raw[self.indices]
        self._labels = labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return (
            f"DigitsSource(split={self.split!r}, n={len(self)}, resolution={self.resolution}, "
            f"val_fraction={self.val_fraction}, seed={self.seed})"
        )

    def _check(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"digits[{self.split}] has {len(self)} images, index {index} is out of range")
        return index

    def key(self, index: int) -> str:
        """Stable id: the row of the image in scikit-learn's array (independent of the split)."""
        return f"digits/{int(self.indices[self._check(index)]):04d}"

    def fingerprint(self, index: int) -> str:
        """Hash of the raw 8x8 pixels and the label."""
        i = self._check(index)
        h = hashlib.sha256(self._raw[i].tobytes())
        h.update(str(int(self._labels[i])).encode())
        return h.hexdigest()[:16]

    def label(self, index: int) -> int:
        return int(self._labels[self._check(index)])

    def labels(self, indices: Sequence[int] | None = None) -> Tensor:
        """Digit classes (int64) of ``indices`` (all images by default), for evaluation."""
        import torch

        idx = np.arange(len(self)) if indices is None else np.asarray([self._check(int(i)) for i in indices])
        return torch.from_numpy(self._labels[idx].copy())

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        """Class prompts ``the digit k`` of ``indices`` when built with ``captions=True``, else None."""
        if not self.with_captions:
            return None
        return [f"the digit {self.label(int(i))}" for i in indices]

    def read(self, indices: Sequence[int]) -> ImageBatch:
        """Images ``(B, 3, R, R)`` float32 in ``[0, 1]`` with their keys (and captions when enabled)."""
        import torch

        idx = [self._check(int(i)) for i in indices]
        grey = torch.from_numpy(self._raw[idx].astype(np.float32) / MAX_VALUE).unsqueeze(1)
        images = upsample(grey, self.resolution).clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
        return ImageBatch(images=images, keys=[self.key(i) for i in idx], captions=self.captions(idx))

    def all_images(self) -> Tensor:
        """Every image of the split as one ``(n, 3, R, R)`` tensor (the data set is tiny)."""
        return self.read(range(len(self))).images


def digits(
    split: str = "train", resolution: int = 16, val_fraction: float = 0.25, seed: int = 0, captions: bool = False
) -> DigitsSource:
    """Factory registered as data source ``digits``."""
    return DigitsSource(split=split, resolution=resolution, val_fraction=val_fraction, seed=seed, captions=captions)
