"""Rich console output and progress bars shared by every command.

Text is printed **literally**: the consoles interpret no markup and no ``:emoji:`` codes, so a
name such as ``FLUX.1 [schnell]`` or an error mentioning ``[0,1]`` or ``:x:`` prints exactly as
written, whoever wrote it (a plugin, a recipe, a file name). Style comes from ``style=`` arguments
and :func:`styled` pieces, never from brackets inside strings.

When output is not a terminal (piped, redirected), tables print at their natural width instead
of being cut to 80 columns, so nothing is lost to ``…``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _LiteralConsole(Console):
    """A console without markup or emoji codes whose tables are never cut when piped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(highlight=False, markup=False, emoji=False, **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if self.is_terminal or "width" in kwargs:
            super().print(*objects, **kwargs)
            return
        from rich.measure import Measurement
        from rich.table import Table

        tables = [o for o in objects if isinstance(o, Table)]
        if not tables:
            kwargs.setdefault("soft_wrap", True)  # long lines stay one line in files and pipes
            super().print(*objects, **kwargs)
            return
        options = self.options.update_width(1 << 16)
        natural = max(Measurement.get(self, options, t).maximum for t in tables)
        width = self.width
        self.width = max(width, natural)
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = width


console = _LiteralConsole()
err_console = _LiteralConsole(stderr=True)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Literal text with styled pieces: ``styled(("ok", "green"), " ", path)``."""
    return Text.assemble(*parts)


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout (plain, no colour, one document)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, rate-free ETA and elapsed time; quiet when not a terminal."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("eta", markup=False),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )
