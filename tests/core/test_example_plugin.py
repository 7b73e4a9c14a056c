"""docs/examples/rdm-example-encoder installs like any third-party plugin and is discovered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "rdm-example-encoder"

USE_FROM_RECIPE = """
import json, torch
from rdm_core.recipe.load import load_recipe
from rdm_core.recipe.assemble import build_encoder
recipe = load_recipe({path!r})
enc = build_encoder(recipe, "color_stats")
x = torch.rand(2, 3, 40, 40, requires_grad=True)
f = enc(x)
f.sum().backward()
print(json.dumps({{"shape": list(f.shape), "grad": bool(x.grad.abs().sum() > 0), "dim": enc.spec.dim}}))
"""


@pytest.fixture
def installed_example():
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)], check=True)
    yield
    subprocess.run([*pip, "uninstall", "-q", "-y", "rdm-example-encoder"], check=True)


def test_example_plugin_is_discovered_and_usable_from_a_recipe(installed_example, tmp_path):
    listing = subprocess.run(
        [sys.executable, "-m", "rdm_core", "plugins", "--json"], capture_output=True, text=True, check=True
    ).stdout
    rows = {r["name"]: r for r in json.loads(listing)}
    assert rows["example_encoder"]["status"] == "loaded"
    assert rows["example_encoder"]["distribution"] == "rdm-example-encoder"
    assert rows["example_encoder"]["hooks"] == ["rdm_register_encoders"]

    encoders = subprocess.run(
        [sys.executable, "-m", "rdm_core", "encoders", "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert "color_stats" in {r["name"] for r in json.loads(encoders)}

    recipe = tmp_path / "r.yaml"
    recipe.write_text("encoders: {train: [color_stats]}\n")
    out = subprocess.run(
        [sys.executable, "-c", USE_FROM_RECIPE.format(path=str(recipe))], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {"shape": [2, 24], "grad": True, "dim": 24}
