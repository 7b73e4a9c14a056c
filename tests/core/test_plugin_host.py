"""The plugin host's rules, with in-process plugins: first-party names stay first-party, a clash
refuses one registration (not the plugin), broken factories and hooks show as failed, and every
problem is one line in `rdm plugins` and on stderr of other commands."""

from __future__ import annotations

import json
import types

import pytest

from rdm_core import hookimpl
from rdm_core.cli.main import main
from rdm_core.errors import PluginError
from rdm_core.plugins import PluginHost, get_host, set_host


def plugin(name: str, **hooks) -> types.SimpleNamespace:
    module = types.SimpleNamespace(__name__=name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def shipped_encoders(registry):
    registry.add("digits_cnn", "rdm_core.errors:close_matches", help="the shipped one")


def evil_encoders(registry):
    registry.add("digits_cnn", "evil_pkg.enc:build")  # collides: refused alone
    registry.add("evil_enc", "rdm_core.errors:close_matches")  # still registered


@pytest.fixture
def cli_host(monkeypatch):
    """Install a host for `main()`; strict mode off unless a test sets it."""
    monkeypatch.delenv("RDM_STRICT_PLUGINS", raising=False)
    previous = get_host()

    def install(host: PluginHost) -> PluginHost:
        set_host(host)
        return host

    yield install
    set_host(previous)


def test_first_party_keeps_its_name_whatever_the_registration_order():
    host = PluginHost(discover=False, strict=False)
    host.register_module(plugin("evil", rdm_register_encoders=evil_encoders), "evil")  # registered first
    host.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    reg = host.registry("encoders")
    assert reg.get("digits_cnn").plugin == "toy" and reg.get("digits_cnn").help == "the shipped one"
    assert reg.get("evil_enc").plugin == "evil"  # the rest of the plugin loads
    [problem] = host.problems()
    assert problem.kind == "refused" and host.records["evil"].status == "loaded"
    assert "plugin 'evil' (in-process)" in problem.problem and "first-party plugin 'toy'" not in problem.problem
    assert "'toy' (first-party, distribution rdm)" in problem.problem and "'digits_cnn'" in problem.problem
    assert "replace=True" in problem.fix and "encoders.digits_cnn: evil" in problem.fix


def test_strict_mode_raises_the_same_text_the_listing_shows():
    host = PluginHost(discover=False, strict=True)
    host.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    host.register_module(plugin("evil", rdm_register_encoders=evil_encoders), "evil")
    with pytest.raises(PluginError) as info:
        host.registry("encoders")
    relaxed = PluginHost(discover=False, strict=False)
    relaxed.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    relaxed.register_module(plugin("evil", rdm_register_encoders=evil_encoders), "evil")
    relaxed.registry("encoders")
    assert str(info.value) == relaxed.problems()[0].line()
    assert str(info.value).count("Fix:") == 1


def test_hook_that_raises_is_failed_and_keeps_what_it_registered_before():
    def half(registry):
        registry.add("first_half", "rdm_core.errors:close_matches")
        raise RuntimeError("boom [in] :x: registration")

    host = PluginHost(discover=False, strict=False)
    host.register_module(plugin("half", rdm_register_encoders=half), "half")
    host.fill_all()
    assert host.records["half"].status == "failed"
    assert "rdm_register_encoders failed: RuntimeError: boom [in] :x: registration" in host.records["half"].error
    assert "first_half" in host.registry("encoders")


def test_plugins_listing_shows_refusals_hook_failures_and_missing_factories(cli_host, capsys):
    def missing(registry):
        registry.add("gone_module", "no_such_pkg_xyz.encoder:build")
        registry.add("gone_attr", "rdm_core.errors:no_such_factory")

    host = cli_host(PluginHost(discover=False, strict=False))
    host.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    host.register_module(plugin("evil", rdm_register_encoders=evil_encoders), "evil")
    host.register_module(plugin("missing", rdm_register_encoders=missing), "missing")
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["toy"]["status"] == "loaded" and rows["toy"]["first_party"] is True
    assert rows["evil"]["status"] == "loaded" and [p["kind"] for p in rows["evil"]["problems"]] == ["refused"]
    assert rows["missing"]["status"] == "failed"
    texts = [p["problem"] for p in rows["missing"]["problems"]]
    assert any("module 'no_such_pkg_xyz.encoder' not found" in t for t in texts)
    assert any("has no attribute 'no_such_factory'" in t for t in texts)

    assert main(["plugins"]) == 0  # the table, then one line per problem
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("refused:", "failed:"))]
    assert len(lines) == 3 and all(line.count("Fix:") == 1 for line in lines)

    assert main(["--strict", "plugins"]) == 1


def test_plugins_check_imports_every_factory_one_line_per_problem(cli_host, capsys):
    def broken(registry):
        registry.add("gone", "no_such_pkg_xyz:build")
        registry.add("fine", "rdm_core.errors:close_matches")
        registry.add("not_callable", "rdm_core.plugins:ENTRY_POINT_GROUP")

    host = cli_host(PluginHost(discover=False, strict=False))
    host.register_module(plugin("broken", rdm_register_encoders=broken), "broken")
    assert main(["plugins", "--check"]) == 1
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("failed:")]
    assert len(out) == 2
    assert any("'no_such_pkg_xyz:build' cannot be imported (ModuleNotFoundError" in line for line in out)
    assert any("is a str, not a callable" in line for line in out)


def test_plugins_check_imports_what_an_objective_spec_names(cli_host, capsys):
    from rdm_core.interfaces import ObjectiveSpec

    def objectives(registry):
        registry.add("ghost_settings", "rdm_core.errors:close_matches", spec=ObjectiveSpec(settings="no_pkg_q:S"))
        registry.add(
            "not_dataclass", "rdm_core.errors:close_matches", spec=ObjectiveSpec(settings="rdm_core.errors:RdmError")
        )
        registry.add("wrong_spec", "rdm_core.errors:close_matches", spec={"settings": None})
        registry.add("fine", "rdm_core.errors:close_matches", spec=ObjectiveSpec(check="rdm_core.errors:close_matches"))

    host = cli_host(PluginHost(discover=False, strict=False))
    host.register_module(plugin("objs", rdm_register_objectives=objectives), "objs")
    assert main(["plugins", "--check"]) == 1
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("failed:")]
    assert len(out) == 3, out
    assert any("objective 'ghost_settings': ObjectiveSpec.settings 'no_pkg_q:S' cannot be imported" in ln for ln in out)
    assert any(
        "objective 'not_dataclass': ObjectiveSpec.settings 'rdm_core.errors:RdmError' is not a dataclass" in ln
        for ln in out
    )
    assert any("objective 'wrong_spec': its spec is a dict, not an ObjectiveSpec" in ln for ln in out)


def test_every_command_reports_problems_on_stderr_and_strict_fails_with_the_same_line(cli_host, capsys, monkeypatch):
    host = cli_host(PluginHost(discover=False, strict=False))
    host.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    host.register_module(plugin("evil", rdm_register_encoders=evil_encoders), "evil")
    assert main(["recipes", "--json"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: plugin 'evil' (in-process) registers encoder 'digits_cnn'")
    warning = err[0].removeprefix("warning: ")

    assert main(["--strict", "recipes"]) == 2
    flag = capsys.readouterr().err.strip()
    monkeypatch.setenv("RDM_STRICT_PLUGINS", "1")
    assert main(["recipes"]) == 2
    env = capsys.readouterr().err.strip()
    assert flag == env == f"error: {warning}"


def test_a_replacement_is_used_only_when_the_recipe_selects_it(cli_host, tmp_path):
    def offer(registry):
        registry.add("digits_cnn", "rdm_core.errors:RdmError", replace=True, help="a faster digits_cnn")

    host = cli_host(PluginHost(discover=False, strict=False))
    host.register_module(plugin("toy", rdm_register_encoders=shipped_encoders), "toy", first_party=True)
    host.register_module(plugin("fast", rdm_register_encoders=offer), "fast")
    assert host.registry("encoders").get("digits_cnn").plugin == "toy" and not host.problems()

    from rdm_core.errors import RecipeError
    from rdm_core.recipe.load import load_recipe

    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("plugins: {replace: {encoders.digits_cnn: fast}}\n")
    load_recipe(chosen)
    assert host.registry("encoders").get("digits_cnn").plugin == "fast"
    plain = tmp_path / "plain.yaml"
    plain.write_text("run: {name: x}\n")
    load_recipe(plain)
    assert host.registry("encoders").get("digits_cnn").plugin == "toy"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("plugins: {replace: {encoders.digits_cnn: nobody}}\n")
    with pytest.raises(RecipeError, match="plugin 'nobody' offers no replacement for encoder 'digits_cnn'"):
        load_recipe(wrong)


def test_components_lists_every_kind_with_plugin_spec_and_offers(capsys):
    assert main(["components", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {r["registry"] for r in rows}
    assert {"encoders", "generators", "kernels", "references", "trainers", "metrics", "data_sources"} <= kinds
    by_name = {(r["registry"], r["name"]): r for r in rows}
    cnn = by_name[("encoders", "digits_cnn")]
    assert cnn["plugin"] == "toy" and cnn["spec"]["dim"] == 64 and cnn["in_use"] is True
    assert by_name[("commands", "validate")]["plugin"] == "rdm"
    assert main(["components", "kernels", "--json"]) == 0
    assert {r["registry"] for r in json.loads(capsys.readouterr().out)} == {"kernels"}


def test_plugins_ship_recipes_that_listings_and_extends_find(cli_host, capsys, tmp_path):
    shipped = tmp_path / "pkg_recipe.yaml"
    shipped.write_text("# a plugin recipe [for tests]\nextends: digits-cpu\ntrain: {steps: 4}\n")

    def recipes(registry):
        registry.add("plugin-digits", str(shipped))
        registry.add("digits-cpu", str(shipped))  # a shipped recipe name: refused

    host = cli_host(PluginHost(strict=False))
    host.register_module(plugin("recipe_pkg", rdm_register_recipes=recipes), "recipe_pkg")
    assert main(["recipes", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {r["name"]: r for r in json.loads(captured.out)}
    assert (
        rows["plugin-digits"]["plugin"] == "recipe_pkg"
        and rows["plugin-digits"]["about"] == "a plugin recipe [for tests]"
    )
    assert rows["digits-cpu"]["plugin"] == "rdm" and rows["digits-cpu"]["path"].endswith("recipes/digits-cpu.yaml")
    assert "registers recipe 'digits-cpu', which rdm itself (distribution rdm) already provides" in captured.err

    from rdm_core.recipe.load import load_recipe

    assert load_recipe("plugin-digits").train.steps == 4
    child = tmp_path / "child.yaml"
    child.write_text("extends: plugin-digits\ntrain: {lr: 0.5}\n")
    r = load_recipe(child)
    assert (r.train.steps, r.train.lr, r.generator.name) == (4, 0.5, "digits-mlp")
    assert main(["recipes"]) == 0
    assert "a plugin recipe [for tests]" in capsys.readouterr().out  # brackets print literally


def test_shipped_plugins_pass_the_deep_check(cli_host, capsys):
    """Every shipped factory imports, is callable, and has the signature validate reads from source."""
    cli_host(PluginHost(strict=False))
    assert main(["plugins", "--check"]) == 0, capsys.readouterr().out
    assert "0 problem(s)" in capsys.readouterr().out
