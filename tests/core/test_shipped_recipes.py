"""Every shipped recipe validates, names exist, and starts with the command that runs it."""

from __future__ import annotations

import itertools
import re

import pytest

from rdm_core.recipe.load import list_recipes, load_recipe
from rdm_core.recipe.validate import validate_recipe

RECIPES = list_recipes()
FULL_SIZE = {"flux2-klein-1step", "flux1-schnell-1step", "wan-t2v-1step", "imagenet-irdm"}


def test_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert {"digits-cpu", "flux2-klein-1step", "flux2-klein-tiny"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_documents_its_command(path):
    lines = path.read_text().splitlines()
    head = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert head, "a recipe starts with a comment giving the command that runs it"
    # `rdm train recipes/x.yaml`, `torchrun ... -m rdm_core train recipes/x.yaml` or `rdm run ...`
    assert re.search(rf"\b(rdm|rdm_core) (train|run) \S*{re.escape(path.name)}\b", head), head
    # full-size recipes name user data (caption files, prompt pools) absent here: names and arguments only
    full_size = path.stem in FULL_SIZE
    assert validate_recipe(load_recipe(path), files=not full_size)


def test_validating_every_shipped_recipe_imports_no_heavy_library():
    """`rdm validate` reads factory signatures from source: no torch, timm, transformers, ..."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom rdm_core.recipe.load import load_recipe\nfrom rdm_core.recipe.validate import validate_recipe\n"
        f"for path in {[str(p) for p in RECIPES]!r}:\n"
        f"    validate_recipe(load_recipe(path), files=not any(n in path for n in {sorted(FULL_SIZE)!r}))\n"
        "heavy = [m for m in ('torch', 'timm', 'open_clip', 'transformers', 'diffusers', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY []"
