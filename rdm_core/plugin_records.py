"""What the plugin host records about each plugin: its identity, status and problems.

A problem is one line (problem + fix) that ``rdm plugins`` lists and every other command prints
on stderr: ``failed`` (the plugin, a hook or a factory is broken) or ``refused`` (a name clash:
the registration, or the whole entry point, did not take effect).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any

from rdm_core.errors import PluginError, RdmError

FIRST_PARTY_DISTRIBUTION = "rdm"


@dataclass(frozen=True)
class PluginProblem:
    """One thing wrong with one plugin: ``failed`` (broken) or ``refused`` (a name clash)."""

    plugin: str
    kind: str  # failed | refused
    problem: str
    fix: str

    def as_error(self) -> PluginError:
        return PluginError(self.problem, self.fix)

    def line(self) -> str:
        return f"{self.problem} Fix: {self.fix}"


@dataclass
class PluginRecord:
    """What ``rdm plugins`` reports about one plugin.

    ``name`` is the entry-point name; ``key`` is unique in the host (a refused plugin that
    reuses another's entry-point name is keyed ``"name (distribution)"``).
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | failed | refused | disabled
    source: str = "entry point"  # entry point | in-process
    first_party: bool = False
    problems: list[PluginProblem] = field(default_factory=list)
    key: str = ""
    order: int = 0

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    @property
    def error(self) -> str | None:
        """The first problem, as one line (``None`` when there is none)."""
        return self.problems[0].line() if self.problems else None

    def describe(self) -> str:
        """``plugin 'x' (distribution d)`` for messages."""
        return f"plugin {self.name!r} ({describe_distribution(self.distribution, self.first_party)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
            "problems": [{"kind": p.kind, "problem": p.problem, "fix": p.fix} for p in self.problems],
            "first_party": self.first_party,
            "source": self.source,
        }


def describe_distribution(distribution: str | None, first_party: bool) -> str:
    if first_party:
        return f"first-party, distribution {FIRST_PARTY_DISTRIBUTION}"
    return f"distribution {distribution}" if distribution else "in-process"


def canonical(distribution: str | None) -> str:
    return (distribution or "").lower().replace("_", "-").replace(".", "-")


def short_error(exc: BaseException) -> tuple[str, str | None]:
    """``(what happened, the error's own fix if it has one)`` in one line each."""
    if isinstance(exc, RdmError):
        return exc.problem, exc.fix
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({os.path.basename(frame[0].filename)}:{frame[0].lineno})" if frame else ""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}{where}", None
