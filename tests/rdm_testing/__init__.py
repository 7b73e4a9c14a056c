"""Helpers shared by rdm's test suite (never shipped): tiny plugins, brute-force references,
project builders and the temporary-environment installer.

``tests/`` is on ``sys.path`` for pytest (``pythonpath`` in pyproject.toml); subprocesses started
by tests get it through :func:`rdm_testing.subprocess_env`.
"""

from __future__ import annotations

import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TESTS_DIR.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    """The current environment plus ``tests/`` on PYTHONPATH (so a child can import rdm_testing)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p)
    return env
