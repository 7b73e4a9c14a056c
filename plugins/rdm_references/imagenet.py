"""The ImageNet-1k class list shipped with rdm: WordNet ids and short names in class-index order.

Class index i is the i-th WordNet id in sorted order, the convention of the ImageNet folder
layout (``train/<wnid>/...``), of torchvision and of class-conditional ImageNet generators. The
short names are torchvision's; the file header records the provenance and licences of both
columns (``rdm_references/data/imagenet_classes.txt``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CLASSES_FILE = Path(__file__).parent / "data" / "imagenet_classes.txt"
NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """``(wnid, name)`` for class 0..999."""
    rows = []
    for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            wnid, name = line.split("\t")
            rows.append((wnid, name))
    if len(rows) != NUM_CLASSES:  # pragma: no cover - guards the shipped file
        raise RuntimeError(f"{CLASSES_FILE} lists {len(rows)} classes, expected {NUM_CLASSES}")
    return tuple(rows)


def synset_index() -> dict[str, int]:
    """WordNet id -> class index."""
    return {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}


def class_names() -> list[str]:
    """Short class names in class-index order (``tench``, ``goldfish``, ...)."""
    return [name for _, name in imagenet_classes()]


def class_prompts(template: str = "a photo of a {}") -> list[str]:
    """One prompt per class, in class-index order (class-conditional PickScore)."""
    return [template.format(name) for name in class_names()]
