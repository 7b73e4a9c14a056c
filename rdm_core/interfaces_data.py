"""The data-source contracts (image and prompt sources) and the chunking every reader uses.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


@dataclass
class ImageBatch:
    """A batch read from an image source: ``images`` in ``[0,1]`` (B,3,R,R), float32."""

    images: Tensor
    keys: list[str]
    captions: list[str] | None = None


@runtime_checkable
class ImageSource(Protocol):
    """A deterministic, indexable collection of images (folder, JSONL, teacher renders, digits).

    Optional capabilities (:mod:`rdm_core.capabilities`): ``captions`` without decoding
    (:class:`~rdm_core.capabilities.CaptionedSource`), a cheap change token
    (:class:`~rdm_core.capabilities.StatTokenSource`), a manifest description
    (:class:`~rdm_core.capabilities.DescribedSource`).
    """

    def __len__(self) -> int:
        """Number of items; indices are ``0 .. len - 1``."""
        ...

    def key(self, index: int) -> str:
        """A stable identity of item ``index`` (a relative path, a row id), unique in the source."""
        ...

    def fingerprint(self, index: int) -> str:
        """Changes whenever item ``index``'s content changes (manifests detect edits with it)."""
        ...

    def read(self, indices: Sequence[int]) -> ImageBatch:
        """Items ``indices`` in order: ``(len(indices), 3, R, R)`` float32 images in ``[0, 1]``
        on the CPU, their keys, and their captions (``None`` when the source has none)."""
        ...


@runtime_checkable
class PromptSource(Protocol):
    """An ordered list of prompts (captions, GenEval prompts)."""

    def prompts(self) -> list[str]: ...


def iter_chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n)`` in chunks of ``size``."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    for start in range(0, n, size):
        yield start, min(start + size, n)
