from __future__ import annotations

import pytest

from rdm_core.errors import DuplicateNameError, RecipeError, UnknownNameError
from rdm_core.registry import Registry, import_object


def make(width: int = 3, *, depth: int = 1) -> tuple[int, int]:
    return width, depth


def test_add_create_and_lazy_string_factory():
    reg: Registry = Registry("encoder")
    reg.add("direct", make)
    reg.add("lazy", "rdm_core.errors:close_matches")
    assert reg.create("direct", width=5) == (5, 1)
    assert reg.create("lazy", name="clp", candidates=["clip"]) == ["clip"]
    assert reg.names() == ["direct", "lazy"]
    assert import_object("os.path:join") is __import__("os").path.join


def test_unknown_name_is_keyerror_with_suggestions():
    reg: Registry = Registry("encoder")
    for name in ("dinov2", "dinov3_l", "clip"):
        reg.add(name, make)
    with pytest.raises(KeyError) as info:
        reg.get("dinov22")
    err = info.value
    assert isinstance(err, UnknownNameError)
    assert "dinov2" in err.suggestions
    assert "Did you mean 'dinov2'" in str(err)
    assert "clip" in str(err)  # the fix lists the known names


def test_duplicate_names_are_refused_unless_replaced():
    reg: Registry = Registry("kernel")
    reg._registering("plugin_a")
    reg.add("gaussian", make)
    reg._registering("plugin_b")
    with pytest.raises(DuplicateNameError, match="plugin_a.*plugin_b"):
        reg.add("gaussian", make)
    reg.add("gaussian", make, replace=True)
    assert reg.get("gaussian").plugin == "plugin_b"


def test_check_args_names_bad_argument_and_accepted_ones():
    reg: Registry = Registry("generator")
    reg.add("g", make)
    reg.check_args("g", {"width": 1, "depth": 2}, "generator")
    with pytest.raises(RecipeError) as info:
        reg.check_args("g", {"widht": 1}, "generator")
    msg = str(info.value)
    assert "'widht'" in msg and "Did you mean 'width'" in msg and "width, depth" in msg
