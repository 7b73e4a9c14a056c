"""``python run_rdm.py ARGS...`` = ``rdm ARGS...`` with the test plugin registered in-process."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_plugin

from rdm_core.cli.main import main
from rdm_core.plugins import get_host

get_host().register_module(tiny_plugin, "gc_tiny")
raise SystemExit(main(sys.argv[1:]))
