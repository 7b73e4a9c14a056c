"""``rdm plugins [--json] [--check]`` and ``rdm components [KIND] [--json]``."""

from __future__ import annotations

import argparse
from typing import Any

from rdm_core.console import console, print_json, styled

STATUS_STYLE = {"loaded": "green", "disabled": "yellow", "refused": "yellow", "failed": "red"}


# -- rdm plugins ------------------------------------------------------------------------------


def configure_plugins(parser: argparse.ArgumentParser):
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--check",
        action="store_true",
        help="import every lazy factory and check it (slow: imports the plugins' libraries); one line per problem",
    )
    return run_plugins


def _status(record: Any) -> tuple[str, str]:
    refused = sum(p.kind == "refused" for p in record.problems)
    if record.status == "loaded" and refused:
        return f"loaded, {refused} name(s) refused", "yellow"
    return record.status, STATUS_STYLE.get(record.status, "red")


def run_plugins(args: argparse.Namespace) -> int:
    from rdm_core.plugin_checks import check_factories
    from rdm_core.plugins import get_host

    host = get_host()
    strict, host.strict = host.strict, False  # list everything; the exit code says strict
    try:
        host.fill_all()
        check_factories(host, deep=args.check)
    finally:
        host.strict = strict
    if args.check:
        return _report_check(host, args.json)
    records = host.ordered_records()
    if args.json:
        print_json([r.to_dict() for r in records])
    else:
        _plugins_table(records)
        for problem in host.problems():
            console.print(styled((f"{problem.kind}: ", STATUS_STYLE[problem.kind]), problem.line()))
    return 1 if args.strict and host.problems() else 0


def _plugins_table(records: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="rdm plugins")
    for col in ("name", "module", "distribution", "version", "hooks", "status"):
        table.add_column(col)
    for r in records:
        status, style = _status(r)
        hooks = ", ".join(h.removeprefix("rdm_register_") for h in r.hooks)
        distribution = r.distribution or r.source
        if r.first_party:
            distribution += " (first-party)"
        table.add_row(r.name, r.module, distribution, r.version or "-", hooks, styled((status, style)))
    console.print(table)


def _report_check(host: Any, as_json: bool) -> int:
    problems = host.problems()
    if as_json:
        print_json([{"plugin": p.plugin, "kind": p.kind, "problem": p.problem, "fix": p.fix} for p in problems])
        return 1 if problems else 0
    checked = len(host.all_entries())
    for problem in problems:
        console.print(styled((f"{problem.kind}: ", STATUS_STYLE[problem.kind]), problem.line()))
    summary = f"checked {checked} registrations of {len(host.records)} plugins: {len(problems)} problem(s)"
    console.print(styled((summary, "red" if problems else "green")))
    return 1 if problems else 0


# -- rdm components ---------------------------------------------------------------------------


def configure_components(parser: argparse.ArgumentParser):
    from rdm_core.registry import REGISTRY_KINDS

    parser.add_argument("kind", nargs="?", choices=sorted(REGISTRY_KINDS), help="only this kind")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return run_components


def _summary(entry: Any) -> str:
    """One line about a registration: the encoder spec's essentials, else its help."""
    from rdm_core.interfaces import EncoderSpec
    from rdm_core.registry import CommandSpec

    spec = entry.spec
    if isinstance(spec, EncoderSpec):
        return f"{spec.split}, dim {spec.dim}, {spec.resolution}px, {spec.library}:{spec.model_id}"
    return entry.help or (spec.help if isinstance(spec, CommandSpec) else "")


def run_components(args: argparse.Namespace) -> int:
    from rdm_core.plugin_checks import describe_factory
    from rdm_core.plugins import get_host
    from rdm_core.registry import REGISTRY_KINDS

    host = get_host()
    kinds = [args.kind] if args.kind else list(REGISTRY_KINDS)
    rows = []
    for kind in kinds:
        registry = host.registry(kind)
        for entry, in_use in registry.registrations():
            row = describe_factory(entry)
            row.update(registry=kind, in_use=in_use)
            shadowed = registry.shadowed(entry.name)
            if in_use and shadowed is not None:
                row["replaces"] = shadowed.plugin
            rows.append((row, entry))
    if args.json:
        print_json([row for row, _ in rows])
        return 0
    from rich.table import Table

    table = Table(title=f"rdm components ({len(rows)})")
    for col in ("kind", "name", "plugin", "factory", "about"):
        table.add_column(col)
    for row, entry in rows:
        about = _summary(entry)
        if entry.offer:
            about = f"({'selected' if row['in_use'] else 'offered'} replacement) {about}".strip()
        elif not row["in_use"]:
            about = f"(not in use) {about}".strip()
        table.add_row(row["registry"], row["name"], row["plugin"], str(row["factory"]), about)
    console.print(table)
    return 0
