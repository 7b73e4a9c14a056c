"""``jsonl``: image-caption pairs listed one per line, paths relative to the JSONL file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_file, fingerprint_parts, read_jsonl, stat_token
from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.images import load_images
from rdm_core.interfaces import ImageBatch


class JsonlSource:
    """Rows ``{"image": path, "caption": text}``; row order is file order.

    Args:
        path: the JSONL file; relative image paths resolve against its directory.
        resolution: output side in pixels (ADM centre crop).
        image_key: the field holding the image path.
        caption_key: the field holding the caption (``None``: no captions).
        workers: decoding threads per batch.
    """

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the JSONL file exists."""
        from rdm_core.recipe.validate import require_file

        require_file(args.get("path"), f"{where} path", 'point `path` at a file of {"image": ..., "caption": ...} rows')

    def __init__(
        self,
        path: str,
        resolution: int = 256,
        image_key: str = "image",
        caption_key: str | None = "caption",
        workers: int = 4,
    ) -> None:
        self.file = Path(path).expanduser()
        if not self.file.is_file():
            raise RecipeError(
                f"JSONL file {str(self.file)!r} does not exist.",
                'point the jsonl source\'s `path` at a file of {"image": ..., "caption": ...} rows',
            )
        self.resolution = int(resolution)
        self.workers = int(workers)
        self._paths: list[Path] = []
        self._names: list[str] = []
        self._captions: list[str] | None = [] if caption_key else None
        for lineno, row in read_jsonl(self.file, fix="write one JSON object per line", error=RecipeError):
            if not isinstance(row, dict) or image_key not in row:
                raise RecipeError(
                    f"{self.file}:{lineno} has no {image_key!r} field.",
                    f"give every row an {image_key!r} path (relative to the JSONL file)",
                )
            name = str(row[image_key])
            self._names.append(name)
            self._paths.append((self.file.parent / name).resolve())
            if self._captions is not None:
                if caption_key not in row:
                    raise RecipeError(
                        f"{self.file}:{lineno} has no {caption_key!r} field.",
                        "give every row a caption, or set caption_key: null",
                    )
                self._captions.append(str(row[caption_key]))
        if not self._paths:
            raise RecipeError(f"JSONL file {str(self.file)!r} has no rows.", "add image rows to it")

    def __len__(self) -> int:
        return len(self._paths)

    def key(self, index: int) -> str:
        return f"{index:08d}:{self._names[index]}"

    def stat_token(self, index: int) -> str:
        cap = self._captions[index] if self._captions is not None else ""
        return f"{self._token(index)}:{fingerprint_parts([cap])}"

    def _token(self, index: int) -> str:
        try:
            return stat_token(self._paths[index])
        except FileNotFoundError:
            return "missing"

    def fingerprint(self, index: int) -> str:
        """Hash of the image bytes and the caption (a re-captioned row is a changed row)."""
        p = self._paths[index]
        if not p.is_file():
            raise ArtifactError(
                f"{self.file}: row {index} names {p}, which does not exist.",
                "restore the image or remove the row from the JSONL file",
            )
        cap = self._captions[index] if self._captions is not None else ""
        return fingerprint_parts([fingerprint_file(p), cap])

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        if self._captions is None:
            return None
        return [self._captions[i] for i in indices]

    def read(self, indices: Sequence[int]) -> ImageBatch:
        images = load_images([self._paths[i] for i in indices], self.resolution, self.workers)
        return ImageBatch(images=images, keys=[self.key(i) for i in indices], captions=self.captions(indices))

    def describe(self) -> dict[str, object]:
        return {"kind": "jsonl", "path": str(self.file), "resolution": self.resolution, "n": len(self)}
