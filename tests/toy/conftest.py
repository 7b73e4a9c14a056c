"""Toy tests share one encoder cache per session (each trainable encoder is fitted once)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def toy_cache(tmp_path_factory):
    """Point ``RDM_CACHE`` at a fresh session directory so tests never touch ~/.cache."""
    root = tmp_path_factory.mktemp("rdm_cache")
    old = os.environ.get("RDM_CACHE")
    os.environ["RDM_CACHE"] = str(root)
    yield root / "toy"
    if old is None:
        os.environ.pop("RDM_CACHE", None)
    else:
        os.environ["RDM_CACHE"] = old
