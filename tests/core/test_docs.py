"""docs/plugins.md lists every hook with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from rdm_core import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _spec_signatures() -> dict[str, str]:
    found = {}
    for name, fn in vars(hookspecs).items():
        if name.startswith("rdm_register_") and callable(fn):
            sig = inspect.signature(fn)
            params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
            found[name] = f"def {name}({params}) -> {sig.return_annotation}"
    return found


def test_hook_reference_matches_hookspecs():
    documented = set(re.findall(r"^def rdm_register_\w+\(.*\) -> \w+$", DOC.read_text(), flags=re.M))
    assert documented == set(_spec_signatures().values())


def test_recipe_docs_cover_every_schema_key():
    import dataclasses

    from rdm_core.recipe import schema

    text = (DOC.parent / "recipes.md").read_text()
    for section in dataclasses.fields(schema.Recipe):
        if section.name in ("extends", "description"):
            continue
        assert f"### `{section.name}`" in text
        for key in dataclasses.fields(type(section.default_factory())):
            assert f"| `{key.name}` |" in text, f"{section.name}.{key.name} is not documented"
