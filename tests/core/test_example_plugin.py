"""docs/examples/rdm-example-encoder installs like any third-party plugin and is discovered.

It is installed into a throwaway environment (``plugin_env``), never into the running one: other
tests running meanwhile see only rdm's own plugins, and the example's source directory gets no
build directories.
"""

from __future__ import annotations

import json

from rdm_core.plugins import PluginHost
from rdm_testing import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "rdm-example-encoder"

USE_FROM_RECIPE = """
import json, sys, torch
from rdm_core.recipe.load import load_recipe
from rdm_core.recipe.assemble import build_encoder
recipe = load_recipe(sys.argv[1])
enc = build_encoder(recipe, "color_stats")
x = torch.rand(2, 3, 40, 40, requires_grad=True)
f = enc(x)
f.sum().backward()
print(json.dumps({"shape": list(f.shape), "grad": bool(x.grad.abs().sum() > 0), "dim": enc.spec.dim}))
"""


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


def test_example_plugin_is_discovered_and_usable_from_a_recipe(plugin_env, tmp_path):
    before = _tree(EXAMPLE)
    plugin_env.install(EXAMPLE)
    assert _tree(EXAMPLE) == before  # no build/ or *.egg-info left beside the sources

    rows = {r["name"]: r for r in json.loads(plugin_env.rdm("plugins", "--json").stdout)}
    assert rows["example_encoder"]["status"] == "loaded"
    assert rows["example_encoder"]["distribution"] == "rdm-example-encoder"
    assert rows["example_encoder"]["hooks"] == ["rdm_register_encoders"]

    encoders = json.loads(plugin_env.rdm("encoders", "--json").stdout)
    assert "color_stats" in {r["name"] for r in encoders}

    recipe = tmp_path / "r.yaml"
    recipe.write_text("encoders: {train: [color_stats]}\n")
    out = plugin_env.python("-c", USE_FROM_RECIPE, str(recipe)).stdout
    assert json.loads(out) == {"shape": [2, 24], "grad": True, "dim": 24}

    # The running interpreter never saw the install.
    assert "example_encoder" not in PluginHost().records


def test_plugin_env_packages_are_visible_only_inside_the_environment(plugin_env):
    pkg = plugin_env.make_package(
        "rdm-envcheck",
        {
            "rdm_envcheck/hooks.py": """
                from rdm_core import hookimpl


                @hookimpl
                def rdm_register_encoders(registry):
                    registry.add("envcheck_encoder", "rdm_envcheck.hooks:build")


                def build(variant="full", weights=None):  # rdm plugins checks that the factory exists
                    raise RuntimeError("never built")
                """
        },
        {"envcheck": "rdm_envcheck.hooks"},
    )
    plugin_env.install(pkg)
    rows = {r["name"]: r for r in json.loads(plugin_env.rdm("plugins", "--json").stdout)}
    assert rows["envcheck"]["status"] == "loaded" and rows["envcheck"]["distribution"] == "rdm-envcheck"
    assert not (pkg / "build").exists() and not list(pkg.glob("*.egg-info"))
    assert "envcheck" not in PluginHost().records
