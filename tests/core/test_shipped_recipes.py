"""Every shipped recipe validates, names exist, and starts with the command that runs it."""

from __future__ import annotations

import pytest

from rdm_core.recipe.load import list_recipes, load_recipe
from rdm_core.recipe.validate import validate_recipe

RECIPES = list_recipes()


def test_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert {"digits-cpu", "flux2-klein-1step", "flux2-klein-tiny"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_documents_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("#"), "a recipe starts with a comment giving the command that runs it"
    assert "rdm " in path.read_text().split("\n\n")[0] or "torchrun" in path.read_text()
    assert validate_recipe(load_recipe(path))
