"""What a build did, and its printed summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BuildReport:
    """What a build did: shards computed and skipped, outputs (re)built, source changes."""

    root: Path
    encoders: list[str]
    computed_shards: list[tuple[str, str, int]] = field(default_factory=list)
    skipped_shards: list[tuple[str, str, int]] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    source_changes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    floors: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def print_report(report: BuildReport) -> None:
    """A rich summary table of a build."""
    from rich.table import Table

    from rdm_core.console import console, styled

    table = Table(title=f"references in {report.root}")
    for col in ("encoder", "shards computed", "shards reused", "outputs rebuilt"):
        table.add_column(col)
    for name in report.encoders:
        done = sum(1 for e, *_ in report.computed_shards if e == name)
        kept = sum(1 for e, *_ in report.skipped_shards if e == name)
        rebuilt = [r.split(":", 1)[1] for r in report.rebuilt if r.startswith(f"{name}:")]
        table.add_row(name, str(done), str(kept), ", ".join(rebuilt) or "-")
    console.print(table)
    for split, changes in report.source_changes.items():
        summary = ", ".join(f"{len(v)} {k}" for k, v in changes.items() if v)
        console.print(styled((f"{split} source changed since the last build:", "yellow"), f" {summary}"))
    if report.floors:
        console.print(f"floors at N={report.floors['n']}: {report.floors['floors']}")
    for note in report.notes:
        console.print(styled(("note:", "yellow"), f" {note}"))
