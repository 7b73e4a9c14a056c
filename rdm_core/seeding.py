"""Deterministic random initialisation of components built from a registry.

Random-weight stand-ins (tiny encoders, untrained heads) must be the same in every process: the
reference builder fingerprints encoder weights, and a trainer started later must see the very
encoders the references were built with. Building under a fork of the global RNG seeded from the
component's name gives that without touching the caller's RNG stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager


def name_seed(*parts: str) -> int:
    """A stable 63-bit seed from strings (independent of Python's hash randomisation)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@contextmanager
def seeded_init(*parts: str, seed: int | None = None) -> Iterator[None]:
    """Run the block with the global CPU RNG seeded, and restore the caller's RNG afterwards.

    Args:
        parts: strings the seed is derived from (:func:`name_seed`), e.g. ``("encoder", name)``.
        seed: an explicit integer seed instead (tiny random-weight builders take one).

    Exactly one of ``parts`` and ``seed`` must be given.
    """
    import torch

    if bool(parts) == (seed is not None):
        raise ValueError("seeded_init takes name parts or seed=, not both and not neither")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(name_seed(*parts) if seed is None else int(seed))
        yield
