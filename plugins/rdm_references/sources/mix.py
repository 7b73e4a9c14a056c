"""``mix``: several sources concatenated in order (e.g. ``[GenEval renders | COCO renders]``)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch


class MixSource:
    """The rows of ``sources[0]``, then ``sources[1]``, ...; keys are prefixed ``<part>:``.

    Args:
        sources: list of ``{"name": registry name, "args": {...}}`` or already built sources.
        resolution: passed to every part whose factory accepts it and does not set it.
    """

    def __init__(self, sources: Sequence[Any], resolution: int | None = None) -> None:
        from rdm_references.build_sources import build_source

        if not sources:
            raise RecipeError("the mix source has no parts.", "list at least one source under `sources`")
        self.parts = [build_source(s, resolution) if isinstance(s, dict) else s for s in sources]
        self._starts: list[int] = []
        total = 0
        for part in self.parts:
            self._starts.append(total)
            total += len(part)
        self._n = total

    def __len__(self) -> int:
        return self._n

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self._n:
            raise IndexError(index)
        j = bisect.bisect_right(self._starts, index) - 1
        return j, index - self._starts[j]

    def key(self, index: int) -> str:
        j, i = self._locate(index)
        return f"{j}:{self.parts[j].key(i)}"

    def fingerprint(self, index: int) -> str:
        j, i = self._locate(index)
        return self.parts[j].fingerprint(i)

    def stat_token(self, index: int) -> str | None:
        j, i = self._locate(index)
        fn = getattr(self.parts[j], "stat_token", None)
        return fn(i) if fn else None

    def _groups(self, indices: Sequence[int]) -> list[tuple[int, list[int], list[int]]]:
        """Consecutive runs of the same part: (part, local indices, positions in ``indices``)."""
        groups: list[tuple[int, list[int], list[int]]] = []
        for pos, index in enumerate(indices):
            j, i = self._locate(index)
            if groups and groups[-1][0] == j:
                groups[-1][1].append(i)
                groups[-1][2].append(pos)
            else:
                groups.append((j, [i], [pos]))
        return groups

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        out: list[str | None] = [None] * len(indices)
        for j, local, positions in self._groups(indices):
            part = self.parts[j]
            caps = part.captions(local) if hasattr(part, "captions") else part.read(local).captions
            if caps is None:
                return None if all(c is None for c in out) and not _has_captions(self.parts) else _mixed()
            for pos, cap in zip(positions, caps):
                out[pos] = cap
        return out  # type: ignore[return-value]

    def read(self, indices: Sequence[int]) -> ImageBatch:
        import torch

        images, keys, caps = [], [], []
        has_caps = True
        for j, local, _ in self._groups(indices):
            batch = self.parts[j].read(local)
            images.append(batch.images)
            keys.extend(f"{j}:{k}" for k in batch.keys)
            if batch.captions is None:
                has_caps = False
            else:
                caps.extend(batch.captions)
        if caps and not has_caps:
            _mixed()
        return ImageBatch(images=torch.cat(images), keys=keys, captions=caps if has_caps else None)

    def describe(self) -> dict[str, object]:
        return {"kind": "mix", "n": len(self), "parts": [getattr(p, "describe", lambda: {})() for p in self.parts]}


def _has_captions(parts: Sequence[Any]) -> bool:
    return any(p.captions([0]) is not None for p in parts if hasattr(p, "captions") and len(p))


def _mixed() -> Any:
    raise RecipeError("the mix source combines captioned and uncaptioned parts.",
                      "give every part captions (jsonl/teacher with prompts) or none of them")
