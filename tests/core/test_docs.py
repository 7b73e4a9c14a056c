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
        if section.name == "objective":  # a free mapping until typed: `name` + the objective's settings
            assert "| `name` |" in text
            continue
        for key in dataclasses.fields(type(section.default_factory())):
            assert f"| `{key.name}` |" in text, f"{section.name}.{key.name} is not documented"


def test_recipe_docs_cover_every_installed_objectives_settings():
    """Plugin-declared sections are documented too: every key of every installed objective's
    settings, nested sections under their dotted path (scripts/recipes_doc.py regenerates)."""
    import dataclasses
    import sys

    sys.path.insert(0, str(DOC.parents[1] / "scripts"))
    from recipes_doc import objective_settings, render

    text = (DOC.parent / "recipes.md").read_text()
    assert text == render(), "docs/recipes.md is stale: run `python scripts/recipes_doc.py`"

    def keys(prefix, cls):
        for f in dataclasses.fields(cls):
            yield prefix, f.name
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):
                yield from keys(f"{prefix}.{f.name}", type(default))

    settings = {name: cls for name, _, cls in objective_settings()}
    assert "mmd" in settings
    for name, cls in settings.items():
        section = text.split(f"### `objective` with `name: {name}`", 1)[1].split("\n### ", 1)[0]
        for prefix, key in keys("objective", cls) if cls else ():
            if prefix != "objective":
                assert f"#### `{prefix}`" in section, f"{name}: {prefix} has no table"
            assert f"| `{key}` |" in section, f"{name}: {prefix}.{key} is not documented"


def test_architecture_walk_names_code_that_exists():
    """Every ``path.py:Name`` / ``path.py:Class.method`` of docs/architecture.md is defined there."""
    import ast

    root = DOC.parents[1]
    text = (root / "docs" / "architecture.md").read_text()
    hops = set(re.findall(r"`((?:rdm_core|plugins)/[\w/]+\.py):([\w.]+)`", text))
    assert len(hops) >= 15  # the training step walk
    for path, dotted in sorted(hops):
        node: ast.AST = ast.parse((root / path).read_text())
        for part in dotted.split("."):
            found = [
                n
                for n in ast.iter_child_nodes(node)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == part
            ]
            assert found, f"docs/architecture.md names {path}:{dotted}, but {part} is not defined there"
            node = found[0]


def test_plugin_docs_give_the_contract_of_every_component_kind():
    """Each kind whose factories build a component has a contract section naming its protocol,
    and every optional capability (with its methods) appears in one of those tables."""
    from typing import Protocol

    from rdm_core import capabilities

    text = DOC.read_text()
    required = {
        "encoders": "Encoder",
        "kernels": "Kernel",
        "references": "ReferenceSet",
        "objectives": "Objective",
        "generators": "Generator",
        "trainers": "Trainer",
        "metrics": "Metric",
        "data_sources": "ImageSource",
    }
    sections = set(re.findall(r"^### .*\(`(\w+)`", text, flags=re.M))
    assert set(required.values()) <= sections
    for name in capabilities.__all__:
        cls = getattr(capabilities, name)
        if not (isinstance(cls, type) and issubclass(cls, Protocol) and cls is not Protocol):
            continue
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"capability {name} has no row in docs/plugins.md"
        for member in capabilities.capability_members(cls):
            assert f"{member}" in row, f"{name}.{member} is not in its docs/plugins.md row"
