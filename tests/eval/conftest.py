"""Fixtures of the evaluation tests: a plugin host with the tiny components, and an eval
environment (recipe, eval banks, checkpoints) in a temporary directory."""

from __future__ import annotations

import pytest

from rdm_core.plugins import PluginHost, set_host
from rdm_testing.eval.eval_tiny import EvalTestPlugin, write_banks, write_checkpoint, write_recipe


@pytest.fixture
def host():
    """A plugin host with rdm_eval's real hooks and the tiny test components (no discovery)."""
    import rdm_eval.hooks

    h = PluginHost(discover=False, strict=True)
    h.register_module(rdm_eval.hooks, "eval")
    h.register_module(EvalTestPlugin(), "evaltest")
    set_host(h)
    yield h
    set_host(None)


@pytest.fixture
def eval_env(tmp_path, host):
    """(recipe path, good checkpoint dir, shifted checkpoint dir) with eval banks in place."""
    write_banks(tmp_path / "refs")
    recipe = write_recipe(tmp_path)
    good = write_checkpoint(tmp_path / "runs" / "evaltest", 10, 0.0)
    bad = write_checkpoint(tmp_path / "runs" / "evaltest", 20, 1.5)
    return recipe, good, bad
