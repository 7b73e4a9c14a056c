"""The pieces every command shares: ``auto`` device resolution and the ``--set`` option."""

from __future__ import annotations

import argparse

import pytest
import torch

from rdm_core.cli.options import add_overrides
from rdm_core.devices import resolve_device
from rdm_core.errors import RecipeError


def test_auto_is_cpu_without_cuda_and_names_pass_through(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("meta") == torch.device("meta")
    dev = torch.device("cpu")
    assert resolve_device(dev) is dev


def test_auto_and_cuda_pick_this_ranks_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:2", local_rank=1) == torch.device("cuda", 2)  # an explicit index wins


def test_cuda_without_a_gpu_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match="no CUDA device"):
        resolve_device("cuda")


def test_every_command_with_overrides_uses_the_one_option():
    parser = argparse.ArgumentParser()
    add_overrides(parser)
    assert parser.parse_args([]).overrides == []
    assert parser.parse_args(["--set", "a.b=1", "--set", "c=x"]).overrides == ["a.b=1", "c=x"]
    from rdm_core.cli.main import build_parser

    for command in ("validate", "generate", "train", "plan", "eval", "reference", "context"):
        top, _ = build_parser([command])
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        parsers = [sub] + [
            p for a in sub._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()
        ]
        options = [a for p in parsers for a in p._actions if "--set" in a.option_strings]
        assert options, command
        assert all(a.dest == "overrides" and a.metavar == "KEY=VALUE" and a.default == [] for a in options), command
