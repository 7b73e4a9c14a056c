from __future__ import annotations

import types

import pytest

from rdm_core import hookimpl
from rdm_core.errors import PluginError
from rdm_core.plugins import PluginHost


def _plugin(name: str, **hooks) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__=name)
    for hook, fn in hooks.items():
        setattr(ns, hook, hookimpl(fn))
    return ns


def _enc(registry):
    registry.add("tiny_enc", lambda **kw: "built")


def _broken(registry):
    raise RuntimeError("boom in registration")


def test_in_process_plugins_fill_registries_and_broken_one_is_isolated():
    host = PluginHost(discover=False, strict=False)
    host.register_module(_plugin("good", rdm_register_encoders=_enc), "good")
    host.register_module(_plugin("bad", rdm_register_encoders=_broken), "bad")
    reg = host.registry("encoders")
    assert reg.names() == ["tiny_enc"]
    assert reg.get("tiny_enc").plugin == "good"
    assert host.records["bad"].status == "failed"
    assert "boom in registration" in host.records["bad"].error
    # the failure is mentioned when a name is missing
    with pytest.raises(KeyError, match="bad"):
        reg.get("other")


def test_strict_mode_raises_on_broken_plugin():
    host = PluginHost(discover=False, strict=True)
    host.register_module(_plugin("bad", rdm_register_encoders=_broken), "bad")
    with pytest.raises(PluginError, match="bad"):
        host.registry("encoders")


def test_hookimpl_without_spec_fails_validation():
    host = PluginHost(discover=False, strict=False)

    def rdm_register_encoderz(registry):  # typo: no such hook
        pass

    host.register_module(_plugin("typo", rdm_register_encoderz=rdm_register_encoderz), "typo")
    assert host.records["typo"].status == "failed"
    assert "rdm_register_encoderz" in host.records["typo"].error


def test_entry_points_are_discovered_and_can_be_disabled(monkeypatch):
    host = PluginHost()
    loaded = {n for n, r in host.records.items() if r.status == "loaded"}
    assert {"encoders", "mmd", "gradcache", "flux2", "eval", "references", "toy"} <= loaded
    assert all(r.source == "entry point" and r.distribution == "rdm" for n, r in host.records.items() if n in loaded)
    monkeypatch.setenv("RDM_DISABLE_PLUGINS", "toy,eval")
    host = PluginHost()
    assert host.records["toy"].status == "disabled" and host.records["eval"].status == "disabled"
    assert host.records["mmd"].status == "loaded"


def test_trace_prints_loads(monkeypatch, capsys):
    monkeypatch.setenv("RDM_TRACE_PLUGINS", "1")
    host = PluginHost()
    host.register_module(_plugin("good", rdm_register_encoders=_enc), "good")
    host.registry("encoders")
    err = capsys.readouterr().err
    assert "rdm-trace: loaded plugin mmd" in err
    assert "good.rdm_register_encoders" in err
