"""``mix``: several sources concatenated in order (e.g. ``[GenEval renders | COCO renders]``)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch
from rdm_references.sources.optional import captions_of, describe_source, stat_tokens


class MixSource:
    """The rows of ``sources[0]``, then ``sources[1]``, ...; keys are prefixed ``<part>:``.

    Args:
        sources: list of ``{"name": registry name, "args": {...}}`` or already built sources.
        resolution: passed to every part whose factory accepts it and does not set it.
        device: passed on the same way (renders and scorers of the parts).
        precision: passed on the same way (teacher renders under the training autocast).
        work_dir: part ``j`` keeps its files (e.g. a curation filter's scores) under ``<work_dir>/part<j>``.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        resolution: int | None = None,
        device: str | None = None,
        work_dir: str | None = None,
        precision: str | None = None,
    ) -> None:
        from pathlib import Path

        from rdm_references.build_sources import build_source

        if not sources:
            raise RecipeError("the mix source has no parts.", "list at least one source under `sources`")
        self.parts = [
            build_source(
                s,
                resolution,
                device=device,
                precision=precision,
                work_dir=Path(work_dir) / f"part{j}" if work_dir else None,
            )
            if isinstance(s, dict)
            else s
            for j, s in enumerate(sources)
        ]
        self._starts: list[int] = []
        total = 0
        for part in self.parts:
            self._starts.append(total)
            total += len(part)
        self._n = total
        self._captioned: list[bool] | None = None
        self._stat_tokens = [stat_tokens(part) for part in self.parts]

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """Every part is checked like a top-level source (``rdm validate``)."""
        from rdm_core.recipe.validate import check_component

        parts = args.get("sources") or []
        if not parts:
            raise RecipeError(f"{where}: the mix source has no parts.", "list at least one source under `sources`")
        for j, part in enumerate(parts):
            check_component("data_sources", part, f"{where} part {j}")

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: every part rewritten by its own rules."""
        out = dict(args)
        out["sources"] = [rehearsal.component("data_sources", part) for part in args.get("sources") or []]
        if args.get("resolution"):
            out["resolution"] = min(int(args["resolution"]), 64)
        return out

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
        return self._stat_tokens[j](i)

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

    def captioned(self) -> list[bool]:
        """Whether each part has captions (asked once, on its first row)."""
        if self._captioned is None:
            self._captioned = [captions_of(p, [0]) is not None for p in self.parts]
        return self._captioned

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        """Captions of ``indices``; ``None`` when no part has any.

        Raises:
            RecipeError: some parts have captions and others do not.
        """
        flags = self.captioned()
        if not any(flags):
            return None
        if not all(flags):
            raise RecipeError(
                "the mix source combines captioned and uncaptioned parts.",
                "give every part captions (jsonl/teacher with prompts) or none of them",
            )
        out: list[str] = [""] * len(indices)
        for j, local, positions in self._groups(indices):
            for pos, cap in zip(positions, captions_of(self.parts[j], local), strict=True):
                out[pos] = cap
        return out

    def read(self, indices: Sequence[int]) -> ImageBatch:
        """Images of ``indices``; captions only when every part has them (a marginal pool may mix)."""
        import torch

        images, keys, caps = [], [], []
        for j, local, _ in self._groups(indices):
            batch = self.parts[j].read(local)
            images.append(batch.images)
            keys.extend(f"{j}:{k}" for k in batch.keys)
            caps.extend(batch.captions or [])
        full = all(self.captioned()) and len(caps) == len(keys)
        return ImageBatch(images=torch.cat(images), keys=keys, captions=caps if full else None)

    def describe(self) -> dict[str, object]:
        return {"kind": "mix", "n": len(self), "parts": [describe_source(p) for p in self.parts]}
