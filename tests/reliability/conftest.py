"""One digits project per session (references + a 3-step run); tests work on copies of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdm_testing.reliability import copy_project, write_recipe


@pytest.fixture(scope="session", autouse=True)
def toy_cache(tmp_path_factory):
    """The toy encoders' cache in a session directory, never in ~/.cache."""
    root = tmp_path_factory.mktemp("rdm_cache")
    old = os.environ.get("RDM_CACHE")
    os.environ["RDM_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("RDM_CACHE", None)
    else:
        os.environ["RDM_CACHE"] = old


@pytest.fixture(scope="session")
def built(tmp_path_factory, toy_cache) -> Path:
    """``refs/`` built by `rdm reference build` and ``runs/a`` trained by `rdm train` (3 steps)."""
    from rdm_core.cli.main import main

    root = tmp_path_factory.mktemp("project")
    recipe = write_recipe(root)
    assert main(["reference", "build", str(recipe)]) == 0
    assert main(["train", str(recipe), "--no-progress"]) == 0
    return root


@pytest.fixture
def project(built, tmp_path) -> Path:
    """A private copy of the built project in ``tmp_path`` with its recipe ``a.yaml``."""
    copy_project(built, tmp_path)
    write_recipe(tmp_path)
    return tmp_path
