"""Fixtures for the encoder tests: an empty offline weights world and a tiny-encoder cache."""

from __future__ import annotations

import pytest


@pytest.fixture
def empty_offline(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 with an empty HF cache and TORCH_HOME in ``tmp_path``."""
    import huggingface_hub.constants as hfc
    import torch.hub

    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the cache location at import time; point the live constant at tmp.
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    yield tmp_path
    torch.hub.set_dir(old)


_TINY: dict[str, object] = {}


@pytest.fixture
def tiny():
    """``tiny(name)``: a cached tiny encoder (built once per test session; they are frozen)."""
    from rdm_core.registry import import_object
    from rdm_encoders.specs import FACTORIES

    def get(name: str):
        if name not in _TINY:
            _TINY[name] = import_object(FACTORIES[name])(variant="tiny")
        return _TINY[name]

    return get
