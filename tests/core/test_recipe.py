from __future__ import annotations

import types
from pathlib import Path

import pytest

from rdm_core import hookimpl
from rdm_core.errors import RecipeError
from rdm_core.plugins import PluginHost, get_host, set_host
from rdm_core.recipe.load import load_recipe, to_yaml
from rdm_core.recipe.validate import validate_recipe


def encoder_factory(variant: str = "full", weights: str | None = None, width: int = 4):
    raise AssertionError("validate must never build an encoder")


def generator_factory(hidden: int = 8, resolution: int = 16):
    raise AssertionError("validate must never build a generator")


def other_factory(**kwargs):
    raise AssertionError("never called")


def _register(registry, names, factory):
    for n in names:
        registry.add(n, factory)


@pytest.fixture
def host():
    plugin = types.SimpleNamespace(__name__="fake")
    plugin.rdm_register_encoders = hookimpl(
        lambda registry: _register(registry, ["enc_a", "enc_b", "held"], encoder_factory)
    )
    plugin.rdm_register_generators = hookimpl(lambda registry: _register(registry, ["gen"], generator_factory))
    plugin.rdm_register_kernels = hookimpl(lambda registry: _register(registry, ["gaussian"], other_factory))
    plugin.rdm_register_references = hookimpl(lambda registry: _register(registry, ["nystrom"], other_factory))
    plugin.rdm_register_trainers = hookimpl(lambda registry: _register(registry, ["gradcache"], other_factory))
    plugin.rdm_register_objectives = hookimpl(lambda registry: _register(registry, ["mmd"], other_factory))
    plugin.rdm_register_metrics = hookimpl(lambda registry: _register(registry, ["sw_r14"], other_factory))
    plugin.rdm_register_data_sources = hookimpl(lambda registry: _register(registry, ["folder"], other_factory))
    previous = get_host()
    h = PluginHost(discover=False)
    h.register_module(plugin, "fake")
    set_host(h)
    yield h
    set_host(previous)


GOOD = """\
# a test recipe
run: {name: t}
generator: {name: gen, args: {hidden: 4}}
encoders: {train: [enc_a, enc_b], held_out: [held], args: {enc_a: {width: 2}}}
references: {train: {name: folder, args: {root: /tmp}}}
train: {rollout: 64, micro_batch: 8, steps: 2}
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_recipe_passes_without_building_anything(host, tmp_path):
    checks = validate_recipe(load_recipe(write(tmp_path, GOOD)))
    assert any("2 training + 1 held-out" in c for c in checks)


def test_extends_and_overrides(host, tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\ntrain: {steps: 7}\n", "child.yaml")
    r = load_recipe(child, ["train.lr=0.5", "generator.args.resolution=32"])
    assert (r.train.steps, r.train.lr, r.train.rollout) == (7, 0.5, 64)
    assert dict(r.generator.args) == {"hidden": 4, "resolution": 32}
    assert "extends" in to_yaml(r) and "steps: 7" in to_yaml(r)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("train: {rollout", "train: {rolout"), "unknown key 'train.rolout'.*Did you mean 'rollout'"),
        (("steps: 2", "steps: two"), "bad value for 'train.steps'"),
        (("[enc_a, enc_b]", "[enc_a, enc_c]"), "unknown encoder 'enc_c'.*Did you mean"),
        (("hidden: 4", "hiden: 4"), "generator 'gen' has no argument 'hiden'.*Did you mean 'hidden'"),
        (("{width: 2}", "{wdth: 2}"), "encoder 'enc_a' has no argument 'wdth'"),
        (("rollout: 64", "rollout: 60"), "not a multiple of train.micro_batch"),
        (("name: folder", "name: foldr"), "unknown data source 'foldr'"),
        (("held_out: [held]", "held_out: [enc_a]"), "both training and held-out"),
    ],
)
def test_bad_recipes_fail_with_one_clear_line(host, tmp_path, edit, expected):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(RecipeError, match=expected) as info:
        validate_recipe(load_recipe(path))
    assert "\n" not in str(info.value)
    assert "Fix:" in str(info.value)


def test_missing_recipe_suggests_shipped_ones():
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("no-such-recipe")


def test_extends_cycle_is_reported(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_extends_a_shipped_recipe_by_name(tmp_path):
    child = write(tmp_path, "extends: digits-cpu\ntrain: {steps: 3}\n", "child.yaml")
    r = load_recipe(child)
    parent = load_recipe("digits-cpu")
    assert r.train.steps == 3 and r.generator.name == parent.generator.name == "digits-mlp"
    assert list(r.encoders.train) == list(parent.encoders.train)


def test_replace_tag_drops_inherited_mapping_instead_of_merging(host, tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    merged = load_recipe(write(tmp_path, "extends: base.yaml\ngenerator: {args: {resolution: 8}}\n", "m.yaml"))
    assert dict(merged.generator.args) == {"hidden": 4, "resolution": 8}
    replaced = load_recipe(
        write(tmp_path, "extends: base.yaml\ngenerator: {args: !replace {resolution: 8}}\n", "r.yaml")
    )
    assert dict(replaced.generator.args) == {"resolution": 8} and replaced.generator.name == "gen"
    emptied = load_recipe(write(tmp_path, "extends: base.yaml\ngenerator:\n  args: !replace {}\n", "e.yaml"))
    assert dict(emptied.generator.args) == {}
    section = load_recipe(write(tmp_path, "extends: base.yaml\ntrain: !replace {steps: 5}\n", "s.yaml"))
    assert (section.train.steps, section.train.rollout) == (5, 1024)  # the rest back to schema defaults
    with pytest.raises(RecipeError, match="!replace applies to a mapping"):
        load_recipe(write(tmp_path, "extends: base.yaml\ntrain: {betas: !replace [1, 2]}\n", "bad.yaml"))


def test_errors_about_inherited_keys_name_the_file_that_set_them(host, tmp_path):
    base = write(tmp_path, GOOD, "base.yaml")

    def other_generator(depth: int = 2):
        raise AssertionError("never built")

    host.registry("generators").add("other", other_generator)
    child = write(tmp_path, "extends: base.yaml\ngenerator: {name: other}\n", "child.yaml")
    with pytest.raises(RecipeError) as info:
        validate_recipe(load_recipe(child))
    message = str(info.value)
    assert "generator 'other' has no argument 'hidden'" in message and f"(set in {base.resolve()})" in message
    assert "!replace" in message and "\n" not in message
    fixed = write(tmp_path, "extends: base.yaml\ngenerator: {name: other, args: !replace {depth: 3}}\n", "fixed.yaml")
    validate_recipe(load_recipe(fixed))
    with pytest.raises(RecipeError) as typed:  # a --set value is the user's own: no origin, no !replace hint
        validate_recipe(load_recipe(fixed, ["generator.args.hidden=5"]))
    assert str(typed.value).startswith("generator: generator 'other' has no argument 'hidden'. Fix: use one of: depth")
    assert "!replace" not in str(typed.value)
    typo = write(tmp_path, "extends: base.yaml\nrun: {name: x}\n", "typo_child.yaml")
    write(tmp_path, GOOD.replace("train: {rollout", "train: {rolout"), "base.yaml")
    with pytest.raises(RecipeError, match=rf"^{base.resolve()}: unknown key 'train.rolout'"):
        load_recipe(typo)
