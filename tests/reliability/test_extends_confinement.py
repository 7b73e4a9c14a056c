"""Item 8 (`extends:`): a relative `extends:` may not leave the recipe's directory tree or the
shipped recipes; an absolute path says "this file, knowingly" and is followed. The refusal names
paths only, never the foreign file's contents, and nothing is written."""

from __future__ import annotations

import yaml

from rdm_testing.reliability import error_line, rdm, recipe_data

SECRET = "hunter2-do-not-print"


def _child(directory, extends: str, name: str = "child"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"extends": extends, "run": {"name": name}}))
    return path


def _foreign(root):
    """A recipe-shaped file outside the project, holding something that must never be echoed."""
    outside = root / "elsewhere"
    outside.mkdir()
    parent = outside / "base.yaml"
    data = recipe_data(root)
    data["description"] = SECRET
    parent.write_text(yaml.safe_dump(data))
    return parent


def test_relative_extends_out_of_the_tree_is_refused_without_echoing_it(project, capsys):
    parent = _foreign(project)
    child = _child(project / "recipes", "../elsewhere/base.yaml")
    for command in (("validate", child), ("train", child, "--no-progress")):
        code, out, err = rdm(capsys, *command)
        assert code == 2
        line = error_line(err)
        assert "leaves the recipe's directory tree" in line and str(parent) in line
        assert f"extends: {parent}" in line  # the fix: the absolute path, to use it knowingly
        assert SECRET not in out + err
    assert not (project / "runs" / "child").exists()


def test_absolute_extends_is_followed_knowingly(project, capsys):
    parent = _foreign(project)
    child = _child(project / "recipes", str(parent))
    code, _, err = rdm(capsys, "validate", child)
    assert code == 0, err


def test_extends_inside_the_tree_and_into_the_shipped_recipes(project, capsys):
    from rdm_core.recipe.load import load_recipe, shipped_recipes_dir

    (project / "recipes" / "base").mkdir(parents=True)
    (project / "recipes" / "base" / "a.yaml").write_text(yaml.safe_dump(recipe_data(project)))
    inside = _child(project / "recipes", "base/a.yaml")
    assert load_recipe(inside).run.name == "child"
    shipped = shipped_recipes_dir() / "digits-cpu.yaml"
    import os

    into_shipped = _child(project / "mine", os.path.relpath(shipped, project / "mine"), name="mine")
    assert load_recipe(into_shipped).generator.name == "digits-mlp"


def test_a_parent_cannot_walk_out_either(project, capsys):
    """The tree is the top recipe's: a parent inside it that extends `../../x` is refused too."""
    parent = _foreign(project)
    nested = project / "recipes" / "base"
    _child(nested, "../../elsewhere/base.yaml", name="middle")
    child = _child(project / "recipes", "base/middle.yaml")
    code, out, err = rdm(capsys, "validate", child)
    assert code == 2
    line = error_line(err)
    assert str(nested / "middle.yaml") in line and str(parent) in line and SECRET not in out + err


def test_broken_yaml_in_a_parent_is_one_line_without_its_contents(project, capsys):
    parent = project / "recipes" / "broken.yaml"
    parent.parent.mkdir(parents=True)
    parent.write_text(f"description: {SECRET}\nrun: [1,\n")
    child = _child(project / "recipes", "broken.yaml")
    code, out, err = rdm(capsys, "validate", child)
    assert code == 2
    line = error_line(err)
    assert str(parent) in line and "not valid YAML" in line and "line" in line
    assert SECRET not in out + err
