"""``folder``: every image under a directory, recursively, in sorted relative-path order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rdm_core.artifacts import fingerprint_file
from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch
from rdm_references.images import IMAGE_SUFFIXES, list_images, load_images, stat_token


class FolderSource:
    """Images of a directory tree, ADM centre-cropped to ``resolution``.

    Files whose suffix is not an image suffix (``.png .jpg .jpeg .webp``, any case) are ignored.
    Item keys are POSIX paths relative to ``root``; the order is sorted by key, so two
    machines listing the same tree agree on row indices.

    Args:
        root: the directory to scan.
        resolution: output side in pixels.
        workers: decoding threads per batch.
    """

    def __init__(self, root: str, resolution: int = 256, workers: int = 4) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise RecipeError(
                f"image folder {str(self.root)!r} does not exist or is not a directory.",
                "point the folder source's `root` at a directory of images",
            )
        self.resolution = int(resolution)
        self.workers = int(workers)
        self._paths = list_images(self.root)
        if not self._paths:
            raise RecipeError(
                f"image folder {str(self.root)!r} contains no images ({', '.join(IMAGE_SUFFIXES)}).",
                "add images to the folder or point `root` elsewhere",
            )
        self._keys = [p.relative_to(self.root).as_posix() for p in self._paths]

    def __len__(self) -> int:
        return len(self._paths)

    def key(self, index: int) -> str:
        return self._keys[index]

    def path(self, index: int) -> Path:
        return self._paths[index]

    def stat_token(self, index: int) -> str:
        """Size and mtime: when unchanged, a previous content hash may be reused."""
        return stat_token(self._paths[index])

    def fingerprint(self, index: int) -> str:
        """Content hash of the file (the crop is a pure function of the bytes)."""
        return fingerprint_file(self._paths[index])

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        return None

    def read(self, indices: Sequence[int]) -> ImageBatch:
        images = load_images([self._paths[i] for i in indices], self.resolution, self.workers)
        return ImageBatch(images=images, keys=[self._keys[i] for i in indices])

    def describe(self) -> dict[str, object]:
        return {"kind": "folder", "root": str(self.root), "resolution": self.resolution, "n": len(self)}
