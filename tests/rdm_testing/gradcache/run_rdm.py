"""``python -m rdm_testing.gradcache.run_rdm ARGS...`` = ``rdm ARGS...`` with the test plugin
registered in-process (run with :func:`rdm_testing.subprocess_env`, which puts ``tests/`` on the path)."""

from __future__ import annotations

import sys

from rdm_core.cli.main import main
from rdm_core.plugins import get_host
from rdm_testing.gradcache import tiny_plugin

if __name__ == "__main__":
    get_host().register_module(tiny_plugin, "gc_tiny")
    raise SystemExit(main(sys.argv[1:]))
