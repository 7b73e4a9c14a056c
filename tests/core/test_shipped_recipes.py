"""Every shipped recipe validates, names exist, and starts with the command that runs it."""

from __future__ import annotations

import itertools
import re

import pytest

from rdm_core.recipe.load import list_recipes, load_recipe
from rdm_core.recipe.validate import validate_recipe

RECIPES = list_recipes()


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
    full_size = path.stem in {"flux2-klein-1step", "flux1-schnell-1step", "wan-t2v-1step", "imagenet-irdm"}
    assert validate_recipe(load_recipe(path), files=not full_size)
