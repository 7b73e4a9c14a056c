"""A view of a data source restricted to some of its rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rdm_core.interfaces import ImageBatch
from rdm_references.sources.optional import captions_of, stat_tokens


class SubsetSource:
    """A view of ``source`` restricted to ``indices`` (in that order)."""

    def __init__(self, source: Any, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = [int(i) for i in indices]
        self._stat_token = stat_tokens(source)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return self.source.key(self.indices[index])

    def fingerprint(self, index: int) -> str:
        return self.source.fingerprint(self.indices[index])

    def stat_token(self, index: int) -> str | None:
        return self._stat_token(self.indices[index])

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        return captions_of(self.source, [self.indices[i] for i in indices])

    def read(self, indices: Sequence[int]) -> ImageBatch:
        return self.source.read([self.indices[i] for i in indices])
