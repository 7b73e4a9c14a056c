"""``folder``: every image under a directory, recursively, in sorted relative-path order.

With ``labels`` the source also knows each image's class from its top-level folder: the ImageNet
layout (``train/<wnid>/*.JPEG``, and ``val/<wnid>/*.JPEG`` after the usual regrouping of the
validation images into class folders).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_file, stat_token
from rdm_core.errors import RecipeError
from rdm_core.images import IMAGE_SUFFIXES, list_images, load_images
from rdm_core.interfaces import ImageBatch

LABEL_MODES = ("synsets", "folders")


class FolderSource:
    """Images of a directory tree, ADM centre-cropped to ``resolution``.

    Files whose suffix is not an image suffix (``.png .jpg .jpeg .webp .bmp``, any case) are ignored.
    Item keys are POSIX paths relative to ``root``; the order is sorted by key, so two
    machines listing the same tree agree on row indices.

    Args:
        root: the directory to scan.
        resolution: output side in pixels.
        workers: decoding threads per batch.
        labels: ``None`` (no classes); ``synsets``: the class of an image is the ImageNet-1k index
            of its top-level folder's WordNet id (``n01440764`` -> 0), so a tree holding only some
            classes still gets the right indices; ``folders``: the position of the top-level
            folder among the sorted top-level folders (torchvision's ``ImageFolder`` rule).
    """

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the image folder exists."""
        from rdm_core.recipe.validate import require_file

        require_file(args.get("root"), f"{where} root", "point `root` at a directory of images", directory=True)

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: an image folder that does not exist here becomes 16 seeded noise
        images in two class folders (ImageNet synset names when ``labels: synsets``), listed as a stand-in."""
        root = Path(str(args.get("root", ""))).expanduser()
        out = dict(args, resolution=min(int(args.get("resolution", 256)), 64))
        if root.is_dir():
            return out
        stand_in = rehearsal.root / "inputs" / (root.name or "images")
        rehearsal.stand_ins[str(args.get("root"))] = "missing here: rehearsed with 16 seeded noise images"
        if not stand_in.is_dir():
            import numpy as np
            from PIL import Image

            rng = np.random.default_rng(0)
            for i in range(16):
                folder = stand_in / ("n01440764" if i % 2 == 0 else "n01443537")
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
        out["root"] = str(stand_in)
        return out

    def __init__(self, root: str, resolution: int = 256, workers: int = 4, labels: str | None = None) -> None:
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
        self.label_mode = labels
        self._class_names: list[str] = []
        self._labels: list[int] = self._assign_labels(labels) if labels is not None else []

    def _assign_labels(self, mode: str) -> list[int]:
        if mode not in LABEL_MODES:
            raise RecipeError(f"folder source labels {mode!r} is unknown.", f"use one of: {', '.join(LABEL_MODES)}")
        flat = [k for k in self._keys if "/" not in k]
        if flat:
            raise RecipeError(
                f"folder source labels need one folder per class, but {flat[0]!r} lies directly in {str(self.root)!r}.",
                "arrange the images as ROOT/<class>/<image> (ImageNet val: regroup the flat files into <wnid> folders)",
            )
        folders = [k.split("/", 1)[0] for k in self._keys]
        if mode == "folders":
            order = {name: i for i, name in enumerate(sorted(set(folders)))}
            self._class_names = sorted(order)
            return [order[f] for f in folders]
        from rdm_references.imagenet import class_names, synset_index

        index = synset_index()
        unknown = sorted(set(folders) - set(index))
        if unknown:
            raise RecipeError(
                f"folder {unknown[0]!r} under {str(self.root)!r} is not an ImageNet-1k WordNet id "
                f"({len(unknown)} such folders).",
                "point root at an ImageNet train/ or val/ tree of <wnid> folders, or use labels: folders",
            )
        self._class_names = class_names()
        return [index[f] for f in folders]

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

    def labels(self, indices: Sequence[int]) -> list[int]:
        """Class indices of the items (requires ``labels``)."""
        if self.label_mode is None:
            raise RecipeError(
                f"folder source {str(self.root)!r} was built without labels.", "set labels: synsets (or folders)"
            )
        return [self._labels[i] for i in indices]

    def class_names(self) -> list[str]:
        """Names by class index: ImageNet short names (``synsets``) or the folder names (``folders``)."""
        return list(self._class_names)

    def read(self, indices: Sequence[int]) -> ImageBatch:
        images = load_images([self._paths[i] for i in indices], self.resolution, self.workers)
        return ImageBatch(images=images, keys=[self._keys[i] for i in indices])

    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {
            "kind": "folder",
            "root": str(self.root),
            "resolution": self.resolution,
            "n": len(self),
        }
        if self.label_mode is not None:
            info.update(labels=self.label_mode, classes_present=len(set(self._labels)))
        return info
