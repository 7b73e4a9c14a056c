"""The optional source capabilities, each with the fallback used when a source lacks it.

See :mod:`rdm_core.capabilities`: captions without decoding images
(:class:`~rdm_core.capabilities.CaptionedSource`, else ``read(indices).captions``), a cheap change
token (:class:`~rdm_core.capabilities.StatTokenSource`, else ``None``: fingerprint every time) and a
manifest description (:class:`~rdm_core.capabilities.DescribedSource`, else ``{}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rdm_core.capabilities import CaptionedSource, DescribedSource, StatTokenSource
from rdm_core.interfaces import ImageSource


def captions_of(source: ImageSource, indices: Sequence[int]) -> list[str] | None:
    """Captions of ``indices`` (``None``: the source has none), decoding images only if it must."""
    if isinstance(source, CaptionedSource):
        return source.captions(indices)
    return source.read(indices).captions


def stat_tokens(source: ImageSource) -> Callable[[int], str | None]:
    """``index -> change token`` of ``source`` (always ``None`` without the capability).

    Checked once here rather than per item: manifests ask for every item of large folders.
    """
    if isinstance(source, StatTokenSource):
        return source.stat_token
    return lambda index: None


def describe_source(source: ImageSource) -> dict[str, Any]:
    """The source's JSON description for manifests (``{}`` without the capability)."""
    return source.describe() if isinstance(source, DescribedSource) else {}
