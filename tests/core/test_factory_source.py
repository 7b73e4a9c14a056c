"""Factory signatures read from source agree with inspect.signature after import, and what cannot
be read says so (None) instead of guessing."""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap

import pytest

from rdm_core.factory_source import check_target, static_parameters
from rdm_core.registry import _parameters_of

BASE = """
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class Base(Generic[T]):
    def __init__(self, width: int, *, depth: int = 2, **extra) -> None:
        pass


@dataclass
class Config:
    size: int
    ratio: float = 0.5
    tags: list = field(default_factory=list)
    hidden: int = field(default=0, init=False)
"""

MOD = """
import functools
from dataclasses import dataclass

from .base import Base, Config
from . import base as base_module

SIZE = 3


def plain(a, b=1, /, c=2, *args, d, e=5, **kw):
    return a


class Child(Base):
    pass


class Own(Base):
    def __init__(self, x: int = 1) -> None:
        super().__init__(x)

    @classmethod
    def from_size(cls, size: int, scale: float = 1.0):
        return cls(size)

    @staticmethod
    def build(kind: str):
        return kind


@dataclass(repr=False)
class MoreConfig(Config):
    extra: str = "x"


def _maker(name):
    def factory(variant="full", weights=None, seed=None):
        return name

    factory.__name__ = name
    return factory


made = _maker("made")
alias = plain
via_module = base_module.Base
imported = Config


@functools.lru_cache
def decorated(a):
    return a


class Meta(Base, metaclass=type):
    pass


class Two(Base, Config):
    pass


try:
    maybe = plain
except ImportError:
    maybe = None

first, *rest = plain, Own
"""

READABLE = [
    "plain",
    "Child",
    "Own",
    "Own.from_size",
    "Own.build",
    "MoreConfig",
    "made",
    "alias",
    "via_module",
    "imported",
]
UNKNOWN = ["decorated", "Meta", "Two", "maybe", "SIZE", "first", "rest"]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    pkg = root / "fs_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(textwrap.dedent(BASE))
    (pkg / "mod.py").write_text(textwrap.dedent(MOD))
    sys.path.insert(0, str(root))
    yield "fs_probe_pkg.mod"
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("fs_probe_pkg")]:
        del sys.modules[name]


def _kinds(params):
    return [(p.name, p.kind) for p in params]


def test_readable_factories_match_inspect_without_importing(package):
    static = {name: static_parameters(f"{package}:{name}") for name in READABLE}
    assert "fs_probe_pkg.mod" not in sys.modules  # nothing was imported to read them
    module = importlib.import_module(package)
    for name, params in static.items():
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part)
        assert params is not None, name
        assert _kinds(params) == _kinds(_parameters_of(obj)), name


def test_what_cannot_be_read_is_unknown_not_guessed(package):
    for name in UNKNOWN:
        assert static_parameters(f"{package}:{name}") is None, name


def test_missing_modules_and_attributes_are_certain_problems(package):
    assert check_target(f"{package}:plain") is None
    assert check_target(f"{package}:no_such") == "module 'fs_probe_pkg.mod' has no attribute 'no_such'"
    assert check_target("fs_probe_pkg.nope:x") == "module 'fs_probe_pkg.nope' not found"
    assert check_target(f"{package}:maybe") is None  # conditional: only importing can tell
    assert check_target(f"{package}:rest") is None  # bound by unpacking: exists, not readable
    assert check_target("plain_string") == "factory 'plain_string' must look like 'module:attribute'"


def test_parameters_keep_kinds_and_show_defaults_as_written(package):
    params = {p.name: p for p in static_parameters(f"{package}:plain")}
    assert params["a"].kind is inspect.Parameter.POSITIONAL_ONLY and params["d"].default is inspect.Parameter.empty
    assert repr(params["e"].default) == "5" and params["kw"].kind is inspect.Parameter.VAR_KEYWORD
