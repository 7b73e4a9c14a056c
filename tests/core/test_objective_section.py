"""The recipe's `objective:` section: `name` plus the settings its objective declares, validated in
struct mode like core keys; a layer that switches objective starts afresh; a missing objective
(or trainer) names the plugin that provides it."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rdm_core import hookimpl
from rdm_core.errors import RecipeError
from rdm_core.interfaces import ObjectiveSpec
from rdm_core.plugins import PluginHost, get_host, set_host
from rdm_core.recipe.load import load_recipe, recipe_from_dict, to_yaml
from rdm_core.recipe.validate import validate_recipe


@dataclass
class Window:
    """Nested settings."""

    size: int = 4
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class EnergySettings:
    """A fake objective's settings."""

    bank: str = "???"
    scale: float = 1.0
    window: Window = field(default_factory=Window)
    note: str | None = None


def _never_built(context):
    raise AssertionError("loading and validating never build an objective")


def _check(recipe):
    if recipe.objective.scale <= 0:
        raise RecipeError("objective.scale must be positive.", "use e.g. 1.0")
    return [f"objective energy on {recipe.objective.bank}"]


@pytest.fixture
def host():
    plugin = types.SimpleNamespace(__name__="fake_objectives")
    plugin.rdm_register_objectives = hookimpl(
        lambda registry: (
            registry.add("energy", _never_built, spec=ObjectiveSpec(settings=EnergySettings, check=_check)),
            registry.add("plain", _never_built),
        )
    )
    previous = get_host()
    h = PluginHost()  # the installed plugins (mmd, gradcache, ...) plus the fake objectives
    h.register_module(plugin, "fake_objectives")
    set_host(h)
    yield h
    set_host(previous)


BASE = """\
run: {name: t}
generator: {name: digits-mlp}
encoders: {train: [digits_pixels]}
references: {train: {name: digits}}
train: {rollout: 8, micro_batch: 8, steps: 1}
eval: {metrics: []}
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_declared_settings_are_typed_in_struct_mode_with_name_first(host, tmp_path):
    r = load_recipe(write(tmp_path, BASE + "objective: {name: energy, bank: /b, window: {size: '8'}}\n"))
    assert list(r.objective) == ["name", "bank", "scale", "window", "note"]
    assert r.objective.window.size == 8 and r.objective.scale == 1.0  # converted and defaulted
    with pytest.raises(Exception, match="sizes"):  # struct mode survives loading
        r.objective.window.sizes = 3
    assert "objective:\n  name: energy\n  bank: /b" in to_yaml(r)
    assert "objective energy on /b" in validate_recipe(r)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "{name: energy, bank: /b, scal: 2}",
            r"unknown key 'objective.scal' in section 'objective'\. Did you mean 'scale'",
        ),
        ("{name: energy, bank: /b, window: {sise: 2}}", r"unknown key 'objective.window.sise'.*Did you mean 'size'"),
        ("{name: energy, bank: /b, scale: big}", r"bad value for 'objective.scale'"),
        ("{name: plain, anything: 1}", r"unknown key 'objective.anything'.*valid keys: name"),
    ],
)
def test_objective_typos_fail_in_one_line_naming_the_valid_keys(host, tmp_path, section, expected):
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(write(tmp_path, BASE + f"objective: {section}\n"))
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)
    if "scal:" in section:
        assert "valid keys: name, bank, scale, window, note" in info.value.fix


def test_required_setting_and_objective_check_run_in_validate(host, tmp_path):
    r = load_recipe(write(tmp_path, BASE + "objective: {name: energy}\n"))
    with pytest.raises(RecipeError, match="objective 'energy' needs objective.bank, which is not set"):
        validate_recipe(r)
    with pytest.raises(RecipeError, match="objective.scale must be positive"):
        validate_recipe(load_recipe(write(tmp_path, BASE + "objective: {name: energy, bank: /b, scale: -1}\n")))


def test_overrides_and_layers_that_switch_objective_start_afresh(host, tmp_path):
    write(tmp_path, BASE + "objective: {name: energy, bank: /b, scale: 3}\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nobjective: {scale: 5, window: {size: 2}}\n", "child.yaml")
    r = load_recipe(child, ["objective.window.weights.a=0.5"])
    assert (r.objective.bank, r.objective.scale, r.objective.window.size) == ("/b", 5.0, 2)
    assert dict(r.objective.window.weights) == {"a": 0.5}
    # The mmd settings of the parent do not leak into another objective, and vice versa.
    switched = load_recipe(child, ["objective.name=plain"])
    assert dict(switched.objective) == {"name": "plain"}
    mmd = write(tmp_path, "extends: base.yaml\nobjective: {name: mmd, distance: {landmarks: 3}}\n", "mmd.yaml")
    assert load_recipe(mmd).objective.distance.landmarks == 3
    with pytest.raises(RecipeError, match="unknown key 'objective.distance'"):
        load_recipe(write(tmp_path, "extends: base.yaml\nobjective: {bank: /c, distance: {}}\n", "bad.yaml"))
    assert recipe_from_dict({"objective": {"name": "energy", "bank": "/d"}}).objective.scale == 1.0


def test_unknown_objective_leaves_the_section_for_validate_to_report(host, tmp_path):
    r = load_recipe(write(tmp_path, BASE + "objective: {name: enrgy, bank: /b}\n"))  # eval/generate still load it
    with pytest.raises(RecipeError, match="objective.name: unknown objective 'enrgy'. Did you mean 'energy'"):
        validate_recipe(r)


def _rdm(*args: str, disable: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RDM_DISABLE_PLUGINS": disable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rdm_core", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_rdm_train_lives_in_core_and_names_the_disabled_plugin(tmp_path):
    """Disabling the trainer's (or objective's) plugin keeps `rdm train` and says what to enable."""
    help_text = _rdm("--help", disable="gradcache").stdout
    assert "train" in help_text and "plan" not in help_text
    done = _rdm("train", "digits-cpu", "--set", f"run.output_dir={tmp_path}", disable="gradcache")
    assert done.returncode == 2, done.stderr
    assert "trainer 'gradcache' is provided by plugin 'gradcache', which is disabled" in done.stderr
    assert "RDM_DISABLE_PLUGINS" in done.stderr and "Traceback" not in done.stderr
    done = _rdm("train", "digits-cpu", "--set", f"run.output_dir={tmp_path}", disable="mmd")
    assert done.returncode == 2 and "objective 'mmd' is provided by plugin 'mmd', which is disabled" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was written
