"""Where a run lives, and the lock that gives one process at a time the right to write there.

:func:`run_directory` checks ``run.name`` (no environment values, never outside
``run.output_dir``) and returns ``<run.output_dir>/<run.name>``. :func:`run_lock` holds an
exclusive lock on it for as long as a command writes checkpoints, metrics and samples there:
``rdm train`` and ``rdm run`` take it, so a second process on the same directory stops at once
with one line naming the first one's PID instead of interleaving ``metrics.jsonl`` and
overwriting checkpoints.

The lock is an ``flock`` on ``<run dir>/.rdm.lock``, which the kernel releases when the holder
exits in any way (``kill -9`` included), so a lock left by a dead process never blocks: the file
records the holder's PID and host, and the next process takes it over with a note.

:func:`claimed_run` is what a command that trains into a run directory does first: check the
name, take the lock, delete the temporary files a killed predecessor left, and (``--resume``)
compare the recipe with the run's (:mod:`rdm_core.resume`).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError, RunLockedError

LOCK_FILE = ".rdm.lock"
# evaluations write there without the lock (a checkpoint can be evaluated while training runs)
UNLOCKED_SUBDIRS = ("eval",)


def run_directory(recipe: Any) -> Path:
    """``<run.output_dir>/<run.name>``, after checking the name.

    Raises:
        RecipeError: an empty name, a name read from the environment, or one that leaves
            ``run.output_dir`` (``..``, an absolute path).
    """
    from rdm_core.recipe.persist import check_run_name

    check_run_name(recipe)
    name = str(recipe.run.name or "").strip()
    if not name:
        raise RecipeError("run.name is empty.", "set run.name to a directory name, e.g. --set run.name=my-run")
    base = Path(str(recipe.run.output_dir))
    root = base / name
    inside = os.path.normpath(os.path.abspath(root))
    outer = os.path.normpath(os.path.abspath(base))
    if Path(name).is_absolute() or os.path.commonpath([inside, outer]) != outer or inside == outer:
        raise RecipeError(
            f"run.name {name!r} leaves run.output_dir {str(base)!r} (it resolves to {inside}).",
            "use a plain name (subfolders allowed, no '..' and no absolute path); set run.output_dir to change where runs go",
        )
    return root


def _holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    what = f"PID {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        what += f" on {holder['host']}"
    if holder.get("command"):
        what += f" ({holder['command']})"
    return what


@contextmanager
def run_lock(root: str | os.PathLike[str], command: str = "rdm") -> Iterator[Path]:
    """Hold the exclusive write lock of run directory ``root`` (created if needed).

    Args:
        root: the run directory.
        command: what holds it, recorded for the error another process prints (e.g. ``rdm train``).

    Yields:
        The lock file.

    Raises:
        RunLockedError: another live process holds the lock (its PID is in the message).
    """
    import fcntl

    from rdm_core.console import err_console

    run = Path(root)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _holder(path)
                raise RunLockedError(
                    f"run directory {run} is in use by {_describe(holder)}; two writers would overwrite "
                    "each other's checkpoints and interleave metrics.jsonl.",
                    f"wait for it to finish, stop it (kill {holder.get('pid', 'PID')}), or set another run.name",
                ) from None
            raise
        try:  # the holder may have removed the file between our open and our lock: retry on the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _holder(path) if path.stat().st_size else {}
    if previous.get("pid") and previous.get("pid") != os.getpid():  # the kernel freed it: its holder died
        err_console.print(
            f"note: took over the lock of {run} left by {_describe(previous)}, which ended without releasing it",
            style="yellow",
            soft_wrap=True,
        )
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    os.fsync(fd)
    try:
        yield path
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)
        if created:
            try:
                run.rmdir()  # nothing was written: leave no empty run directory behind
            except OSError:
                pass


def clean_stale_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files and checkpoint directories killed writers left in a run
    directory (``.<name>.<random>.tmp``), except under ``eval/``. Call it holding the lock."""
    from rdm_core.write_failures import remove_stale_temporaries

    run = Path(root)
    removed: list[Path] = []
    if not run.is_dir():
        return removed
    for directory in [run, *sorted(p for p in run.rglob("*") if p.is_dir())]:
        inside = directory.relative_to(run).parts
        if (inside and inside[0] in UNLOCKED_SUBDIRS) or not directory.is_dir():  # not ours, or just removed
            continue
        removed.extend(remove_stale_temporaries(directory))
    return removed


@contextmanager
def claimed_run(
    recipe: Any, *, command: str, resume: bool = False, allow_recipe_change: bool = False
) -> Iterator[Path]:
    """Claim the recipe's run directory for writing: checked name, lock, no stale temporaries,
    and (``resume``) a recipe that matches the run's or an explicitly recorded change.

    Args:
        recipe: the loaded recipe.
        command: what claims it (shown to a second process), e.g. ``"rdm train"``.
        resume: the command continues the run from its latest checkpoint.
        allow_recipe_change: ``--allow-recipe-change`` (see :mod:`rdm_core.resume`).

    Yields:
        The run directory.

    Raises:
        RecipeError: a bad run.name, or a changed recipe on resume.
        RunLockedError: another live process writes there.
    """
    from rdm_core.checkpoints import list_checkpoints
    from rdm_core.console import err_console
    from rdm_core.resume import check_resume_recipe

    root = run_directory(recipe)
    if os.environ.get("RANK", "0").strip() not in ("", "0"):  # under torchrun rank 0 alone writes and locks
        yield root
        return
    with run_lock(root, command):
        removed = clean_stale_temporaries(root)
        if removed:
            err_console.print(
                f"note: removed {len(removed)} temporary file(s) a killed process left in {root}",
                style="yellow",
                soft_wrap=True,
            )
        done = list_checkpoints(root)
        if resume and done:
            check_resume_recipe(root, recipe, done[-1][0], allow_change=allow_recipe_change)
        yield root
