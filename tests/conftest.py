"""Shared test set-up: offline, deterministic, few threads (CI has 2 cores), isolated per test.

- Every test starts from the same global RNG state (torch, numpy, Python ``random``), so no test
  depends on which tests ran before it in its worker.
- Hypothesis runs derandomized with no example database by default (the ``ci`` profile): the
  suite's outcome does not depend on luck and nothing is written into the work tree. Set
  ``RDM_HYPOTHESIS_PROFILE=explore`` to search with fresh random examples; that profile keeps its
  database in the user cache, outside the tree.
- ``plugin_env``: a throwaway environment to install third-party packages into and run ``rdm``
  in (see ``rdm_testing.plugin_env``).
- ``--test-order reverse`` or ``--test-order shuffle:SEED`` reorders the collected tests, to check
  that no test depends on another having run first (``scripts/test --test-order reverse``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

TEST_SEED = 0

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile(
    "explore",
    database=DirectoryBasedExampleDatabase(
        str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rdm" / "hypothesis")
    ),
)
settings.load_profile(os.environ.get("RDM_HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-order",
        default="given",
        help="given (default), reverse, or shuffle:SEED: run the collected tests in another order",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = config.getoption("--test-order")
    if order == "reverse":
        items.reverse()
    elif order.startswith("shuffle:"):
        import random

        random.Random(int(order.split(":", 1)[1])).shuffle(items)
    elif order != "given":
        raise pytest.UsageError(f"--test-order {order!r}: use given, reverse or shuffle:SEED")


@pytest.fixture(autouse=True)
def _deterministic_start():
    """One thread and the same seeded global RNGs at the start of every test."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    random.seed(TEST_SEED)
    yield


@pytest.fixture
def plugin_env(tmp_path):
    """A fresh :class:`rdm_testing.plugin_env.PluginEnv` under ``tmp_path``."""
    from rdm_testing.plugin_env import PluginEnv

    return PluginEnv(tmp_path / "plugin_env")
