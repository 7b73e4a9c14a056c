"""Renders a curation filter keeps, stored once on the 8-bit grid (PNG files, or memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def quantize(images: Any) -> Any:
    """``[0,1]`` floats on the 8-bit grid, exactly the pixels a PNG of them reads back as."""
    from rdm_core.images import to_uint8

    return to_uint8(images).float() / 255.0


class KeptImages:
    """8-bit PNGs of rows a filter keeps, named by row and item fingerprint (a changed item never hits).

    ``root=None`` keeps them in memory (small uses without a cache file).
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._memory: dict[str, Any] = {}

    def path(self, row: int, fingerprint: str) -> Path:
        assert self.root is not None
        return self.root / f"{row:08d}_{fingerprint}.png"

    def has(self, row: int, fingerprint: str) -> bool:
        if self.root is None:
            return f"{row}_{fingerprint}" in self._memory
        return self.path(row, fingerprint).is_file()

    def save(self, row: int, fingerprint: str, image: Any) -> None:
        if self.root is None:
            self._memory[f"{row}_{fingerprint}"] = image.clone()
            return
        from rdm_core.images import save_png

        save_png(image, self.path(row, fingerprint))

    def load(self, row: int, fingerprint: str) -> Any:
        if self.root is None:
            return self._memory[f"{row}_{fingerprint}"]
        from rdm_core.images import read_image

        return read_image(self.path(row, fingerprint))

    def drop(self, row: int, fingerprint: str) -> None:
        if self.root is None:
            self._memory.pop(f"{row}_{fingerprint}", None)
        else:
            self.path(row, fingerprint).unlink(missing_ok=True)

    def prune(self, keep: set[str]) -> None:
        """Delete every stored image whose ``<row>_<fingerprint>`` name is not in ``keep``."""
        if self.root is None:
            self._memory = {k: v for k, v in self._memory.items() if k in keep}
            return
        for png in self.root.glob("*.png"):
            row, _, fp = png.stem.partition("_")
            if f"{int(row)}_{fp}" not in keep:
                png.unlink()
