"""The errors rdm raises. Library code raises these; only the CLI turns them into exit codes.

Every error carries what went wrong and, where one exists, the fix, so the CLI can print one
clear line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RdmError(Exception):
    """Base class: a problem the user can fix. ``fix`` says how."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem} Fix: {fix}")

    def __str__(self) -> str:  # KeyError subclasses would otherwise print repr()
        return self.problem if self.fix is None else f"{self.problem} Fix: {self.fix}"


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Names from ``candidates`` that look like ``name`` (typo suggestions)."""
    pool = list(candidates)
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    lowered = [c for c in pool if name.lower() in c.lower() and c not in found]
    return (found + lowered)[:n]


class UnknownNameError(RdmError, KeyError):
    """A registry name that nobody registered, with close-match suggestions."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None) -> None:
        known = sorted(known)
        matches = close_matches(name, known)
        problem = f"unknown {kind} {name!r}."
        if matches:
            problem += f" Did you mean {', '.join(repr(m) for m in matches)}?"
        fix = hint or (f"use one of: {', '.join(known)}" if known else f"install a plugin that provides {kind}s")
        self.kind, self.name, self.suggestions = kind, name, matches
        super().__init__(problem, fix)


class DuplicateNameError(RdmError):
    """Two plugins registered the same name in one registry."""


class PluginError(RdmError):
    """A plugin failed to load or to register (raised in strict mode only)."""


class RecipeError(RdmError):
    """A recipe that cannot be used: unknown key, wrong type, bad name or argument."""


class ArtifactError(RdmError):
    """A file rdm wrote (or should have) is missing, corrupt or does not match."""


class ReferenceMismatchError(ArtifactError):
    """A reference set that does not match what the recipe expects."""


class WeightsNotFoundError(RdmError):
    """Model weights are not available locally (offline, or no path given)."""


class NonFiniteError(RdmError):
    """NaN or Inf where finite numbers are required (features, losses)."""


class ShapeError(RdmError):
    """A tensor with the wrong shape or feature dimension."""


class DiskFullError(ArtifactError):
    """A write ran out of disk space (the partial file was removed)."""


class RunLockedError(RdmError):
    """Another live process holds the run directory (two writers would interleave checkpoints)."""


class ContractError(ShapeError):
    """A plugin returned something its kind's contract forbids (shape, dtype, range, dim)."""
