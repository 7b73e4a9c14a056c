"""``rdm encoders [info NAME | fetch NAME...]`` and ``rdm recipes``.

Everything is printed literally (see :mod:`rdm_core.console`): names, paths and recipe comments
may contain brackets.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from rdm_core.console import console, print_json, styled


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


# -- encoders ---------------------------------------------------------------------------------


def configure_encoders(parser: argparse.ArgumentParser):
    _json_flag(parser)
    parser.add_argument("action", nargs="?", choices=["list", "info", "fetch"], default="list")
    parser.add_argument("names", nargs="*", help="encoder names (info, fetch)")
    parser.add_argument("--split", choices=["train", "held_out"], help="only this split")
    return run_encoders


def _spec_row(name: str, spec: Any, plugin: str) -> dict[str, Any]:
    if spec is None:
        return {"name": name, "plugin": plugin}
    return {
        "name": name,
        "split": spec.split,
        "dim": spec.dim,
        "resolution": spec.resolution,
        "pooling": spec.pooling,
        "library": spec.library,
        "model_id": spec.model_id,
        "license": spec.license,
        "plugin": plugin,
    }


def run_encoders(args: argparse.Namespace) -> int:
    from rdm_core.plugins import registry

    reg = registry("encoders")
    if args.action == "info":
        return _encoder_info(reg, args)
    if args.action == "fetch":
        from rdm_core.weights import fetch_encoder_weights

        for name in args.names:
            for path in fetch_encoder_weights(reg.spec(name)):
                console.print(styled(("fetched", "green"), f" {name}: {path}"))
        return 0
    rows = [_spec_row(e.name, e.spec, e.plugin) for e in reg.entries()]
    if args.split:
        rows = [r for r in rows if r.get("split") == args.split]
    order = {"train": 0, "held_out": 1}
    rows.sort(key=lambda r: order.get(r.get("split", ""), 2))  # stable: keeps registration (panel) order
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title=f"rdm encoders ({len(rows)})")
    for col in ("name", "split", "dim", "resolution", "pooling", "source", "plugin"):
        table.add_column(col)
    for r in rows:
        source = f"{r.get('library', '?')}:{r.get('model_id', '?')}"
        table.add_row(
            r["name"],
            str(r.get("split", "?")),
            str(r.get("dim", "?")),
            str(r.get("resolution", "?")),
            str(r.get("pooling", "?")),
            source,
            r["plugin"],
        )
    console.print(table)
    return 0


def _encoder_info(reg: Any, args: argparse.Namespace) -> int:
    from rich.table import Table

    infos = {}
    for name in args.names:
        entry = reg.get(name)
        infos[name] = {"plugin": entry.plugin, **(asdict(entry.spec) if entry.spec is not None else {})}
    if args.json:
        print_json(infos)
        return 0
    for name, info in infos.items():
        table = Table(title=name)
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key, value in info.items():
            table.add_row(key, str(value))
        console.print(table)
    return 0


# -- recipes ----------------------------------------------------------------------------------


def configure_recipes(parser: argparse.ArgumentParser):
    _json_flag(parser)
    return run_recipes


def _recipe_header(path) -> str:
    """The first comment line of a recipe: what it runs and how."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def run_recipes(args: argparse.Namespace) -> int:
    from rdm_core.plugins import registry
    from rdm_core.recipe.load import recipe_file

    rows = []
    for entry in registry("recipes").entries():
        path = recipe_file(entry.factory)
        about = entry.help or (_recipe_header(path) if path.is_file() else "(missing file)")
        rows.append({"name": entry.name, "plugin": entry.plugin, "path": str(path), "about": about})
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="rdm recipes")
    for col in ("name", "plugin", "about"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["plugin"], r["about"])
    console.print(table)
    return 0
