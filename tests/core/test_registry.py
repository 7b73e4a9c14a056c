from __future__ import annotations

import pytest

from rdm_core.errors import DuplicateNameError, RdmError, RecipeError, UnknownNameError
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


def other(width: int = 3) -> str:
    return "other"


def test_first_party_duplicates_are_a_bug_and_replace_is_only_an_offer():
    reg: Registry = Registry("kernel")
    reg._registering("plugin_a")
    reg.add("gaussian", make)
    reg._registering("plugin_b")
    with pytest.raises(DuplicateNameError, match="plugin_a.*plugin_b"):
        reg.add("gaussian", make)
    reg.add("gaussian", other, replace=True)
    assert reg.get("gaussian").plugin == "plugin_a"  # an offer changes nothing by itself
    assert reg.offers() == {"gaussian": ["plugin_b"]}
    reg.select("gaussian", "plugin_b")
    assert reg.create("gaussian") == "other" and reg.shadowed("gaussian").plugin == "plugin_a"
    reg.unselect_all()
    assert reg.create("gaussian") == (3, 1)
    with pytest.raises(RecipeError, match="plugin_c.*offers no replacement"):
        reg.select("gaussian", "plugin_c")


def test_third_party_registration_of_a_first_party_name_is_refused_alone():
    reg: Registry = Registry("encoder")
    reg._registering("toy", first_party=True)
    reg.add("digits_cnn", make)
    reg._registering("evil", first_party=False)
    reg.add("digits_cnn", other)  # refused, no exception: the plugin's other names still register
    reg.add("evil_enc", other)
    assert reg.get("digits_cnn").plugin == "toy" and reg.get("evil_enc").plugin == "evil"
    assert [(r.name, r.refused, r.kept) for r in reg.refusals] == [("digits_cnn", "evil", "toy")]


def test_two_third_party_plugins_claiming_a_name_both_lose_whatever_the_order():
    for order in (("a", "b"), ("b", "a")):
        reg: Registry = Registry("encoder")
        for plugin in order:
            reg._registering(plugin, first_party=False)
            reg.add("shared", make)
        assert "shared" not in reg
        assert {r.refused for r in reg.refusals} == {"a", "b"} and {r.kept for r in reg.refusals} == {None}
        with pytest.raises(RdmError, match="'a' and 'b'|'b' and 'a'"):
            reg.get("shared")
        assert [(e.plugin, used) for e, used in reg.registrations()] == [(order[0], False), (order[1], False)]


def test_check_args_names_bad_argument_and_accepted_ones():
    reg: Registry = Registry("generator")
    reg.add("g", make)
    reg.check_args("g", {"width": 1, "depth": 2}, "generator")
    with pytest.raises(RecipeError) as info:
        reg.check_args("g", {"widht": 1}, "generator")
    msg = str(info.value)
    assert "'widht'" in msg and "Did you mean 'width'" in msg and "width, depth" in msg
