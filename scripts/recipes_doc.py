"""Regenerate docs/recipes.md from rdm_core/recipe/schema.py (tests/core/test_docs.py keeps them in sync)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from rdm_core.recipe import schema

HEADER = """# Recipes

A recipe is a YAML file of sections. rdm merges it into the structured schema of
`rdm_core/recipe/schema.py` in struct mode, so a misspelled key fails at once, naming the key and
the valid ones. Components are named by registry name (`rdm encoders`, `rdm plugins`); plugin
options go in `args` mappings, which `rdm validate` binds to the factory's signature without
building anything.

Every shipped recipe starts with a comment that gives the command that runs it and what it needs
(weights, references, GPUs); `rdm recipes` shows that first line.

## Inheritance and overrides

- `extends: parent.yaml` (relative to the recipe) merges the parent first; child keys win. Chains
  are followed to the root; cycles are an error.
- Command-line overrides: `rdm train RECIPE --set train.lr=1e-4 --set encoders.variant=tiny`
  (`key=value`, values parsed as YAML; list items by index, `references.filters.0.args.k=3`).
- The resolved recipe (after inheritance and overrides) is written into every run directory.

## Sections and keys

Defaults are the schema's; `???` means required when the section is used.
"""


def render() -> str:
    lines = [HEADER]
    for section in dataclasses.fields(schema.Recipe):
        if section.name in ("extends", "description"):
            continue
        cls = type(section.default_factory())
        lines += [
            f"### `{section.name}`",
            "",
            (inspect.getdoc(cls) or "").replace("\n", " "),
            "",
            "| key | default |",
            "|---|---|",
        ]
        instance = cls()
        for key in dataclasses.fields(cls):
            value = getattr(instance, key.name)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            lines.append(f"| `{key.name}` | `{value!r}` |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    Path(__file__).resolve().parents[1].joinpath("docs", "recipes.md").write_text(render())
