from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from rdm_core import hookimpl
from rdm_core.cli.main import main
from rdm_core.plugins import PluginHost, get_host, set_host

FIRST_PARTY = {"encoders", "mmd", "gradcache", "flux2", "flux1", "wan", "eval", "references", "toy"}


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_plugins_json_lists_first_party_plugins_through_entry_points(capsys):
    rows = {r["name"]: r for r in run_json(capsys, "plugins", "--json")}
    assert FIRST_PARTY <= set(rows)
    for name in FIRST_PARTY:
        assert rows[name]["status"] == "loaded", rows[name]
        assert rows[name]["source"] == "entry point" and rows[name]["distribution"] == "rdm"


def test_broken_plugin_is_reported_and_others_still_load(capsys, monkeypatch):
    monkeypatch.delenv("RDM_STRICT_PLUGINS", raising=False)  # strict mode would make the listing exit 1
    previous = get_host()
    host = PluginHost(strict=False)  # the test command sets RDM_STRICT_PLUGINS=1
    broken = types.SimpleNamespace(__name__="broken_plugin")

    def rdm_register_encoders(registry):
        raise ImportError("missing dependency 'frobnicate'")

    broken.rdm_register_encoders = hookimpl(rdm_register_encoders)
    host.register_module(broken, "broken_plugin")
    host.registry("encoders")
    set_host(host)
    try:
        rows = {r["name"]: r for r in run_json(capsys, "plugins", "--json")}
    finally:
        set_host(previous)
    assert rows["broken_plugin"]["status"] == "failed"
    assert "frobnicate" in rows["broken_plugin"]["error"]
    assert all(rows[n]["status"] == "loaded" for n in FIRST_PARTY)


def test_env_and_recipes_json(capsys):
    env = run_json(capsys, "env", "--json")
    assert env["packages"]["torch"] and "cuda_available" in env["device"]
    assert "HF_HUB_OFFLINE" in env["environment"]
    recipes = run_json(capsys, "recipes", "--json")
    assert all({"name", "path", "about"} <= set(r) for r in recipes)


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {stepz: 3}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "train.stepz" in err and "Fix:" in err
    assert "Traceback" not in err


def test_help_lists_commands_without_heavy_imports():
    code = (
        "import sys; from rdm_core.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('timm', 'open_clip', 'transformers', 'diffusers') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "validate" in out and "plugins" in out
    assert "HEAVY []" in out


def test_text_with_brackets_and_emoji_codes_prints_verbatim(capsys):
    assert main(["validate", "no[bold]such[/]:x:recipe"]) == 2
    err = capsys.readouterr().err
    assert "recipe 'no[bold]such[/]:x:recipe' not found." in err and err.count("Fix:") == 1
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "FLUX.1 [schnell] -> one step" in " ".join(out.split())  # rich no longer eats [schnell]


def test_tables_are_not_cut_when_piped():
    out = subprocess.run(
        [sys.executable, "-m", "rdm_core", "encoders"], capture_output=True, text=True, check=True, env=_env()
    ).stdout
    assert "…" not in out
    assert "timm:vit_large_patch14_dinov2.lvd142m" in out and "webssl_dino_1b" in out


def _env():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "TERM": "dumb"}


def test_generate_without_a_weights_source_asks_for_one(capsys, tmp_path):
    """No silent sampling of untrained weights: --checkpoint, --weights or an explicit --base."""
    with pytest.raises(SystemExit) as exited:
        main(["generate", "digits-cpu", "--num", "1", "--out", str(tmp_path / "s")])
    assert exited.value.code == 2
    assert "one of the arguments --checkpoint --weights --base is required" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
