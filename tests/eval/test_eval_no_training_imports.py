"""Evaluation is strictly off-objective: rdm_eval never imports the training plugins
(rdm_gradcache, rdm_mmd), neither statically nor when `rdm eval` runs on cached features."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import rdm_eval
from rdm_eval.banks import save_features
from rdm_testing.eval.eval_tiny import ENCODERS, make_encoder, real_images, write_banks, write_recipe

TRAINING = ("rdm_gradcache", "rdm_mmd")
PACKAGE = Path(rdm_eval.__file__).parent


def test_no_module_of_rdm_eval_imports_training_code():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names = [str(node.args[0].value)]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in TRAINING]
    assert not offenders, offenders


SCRIPT = r"""
import json, sys, importlib, pkgutil
import rdm_eval
for info in pkgutil.iter_modules(rdm_eval.__path__):
    importlib.import_module(f"rdm_eval.{info.name}")
after_import = sorted(m for m in sys.modules if m.split(".")[0] in {"rdm_gradcache", "rdm_mmd"})
from rdm_core.cli.main import main
code = main(["eval", sys.argv[1], "--features", sys.argv[2], "--out", sys.argv[3], "--json"])
after_run = sorted(m for m in sys.modules if m.split(".")[0] in {"rdm_gradcache", "rdm_mmd"})
print("RESULT" + json.dumps({"code": code, "after_import": after_import, "after_run": after_run}))
"""


def _run(tmp_path: Path, disable: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RDM_DISABLE_PLUGINS": disable}
    env.pop("RDM_STRICT_PLUGINS", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "recipe.yaml"),
            str(tmp_path / "feats.safetensors"),
            str(tmp_path / f"out_{disable or 'all'}"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, done.stderr[-2000:]
    return json.loads(line[len("RESULT") :])


def test_rdm_eval_on_features_never_imports_training_code(tmp_path):
    write_banks(tmp_path / "refs", n=256)
    write_recipe(tmp_path)
    images = real_images(256, 7)
    save_features(tmp_path / "feats.safetensors", {n: make_encoder(n)()(images) for n in ENCODERS}, {"source": "test"})
    # With the training plugins' entry points disabled, not one of their modules is loaded.
    isolated = _run(tmp_path, "mmd,gradcache")
    assert isolated == {"code": 0, "after_import": [], "after_run": []}
    # With every plugin discovered, only their registration modules (hooks.py) are imported, and
    # the mmd objective's recipe schema (plain dataclasses), which loading a recipe types it with.
    full = _run(tmp_path, "")
    assert full["code"] == 0 and full["after_import"] == []
    allowed = {"rdm_mmd", "rdm_mmd.hooks", "rdm_mmd.config", "rdm_gradcache", "rdm_gradcache.hooks"}
    assert set(full["after_run"]) <= allowed, full
