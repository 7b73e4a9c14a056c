"""What is left to say or clean up when a write fails: a full disk (one line naming the disk, its
free space and the fix) and the temporary files a killed writer left behind.

Writers name their temporaries ``.<final name>.<random>`` + :data:`TEMP_SUFFIX`
(:func:`rdm_core.artifacts.atomic_path`, :func:`rdm_core.checkpoints.save_checkpoint`).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from rdm_core.errors import DiskFullError

TEMP_SUFFIX = ".tmp"


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" / "quota exceeded", as an OSError or a library's wrapped text."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text or "StorageFull" in text


def disk_full(path: Path, exc: BaseException | None = None) -> DiskFullError:
    """The one-line error for a write to ``path`` that ran out of space (nothing was kept)."""
    where = path.parent
    while where.name.startswith(".") and where.name.endswith(TEMP_SUFFIX):  # inside a checkpoint's temp dir
        path, where = Path(where.name.split(".")[1]) / path.name, where.parent
    try:
        free = f"{shutil.disk_usage(where).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"no space left on the disk of {where} while writing {path.name} ({free}); nothing was half-written.",
        f"free space on that disk (delete old runs, checkpoints, eval renders or caches under {where}, "
        "or point the output somewhere larger), then re-run the same command: it continues where it stopped",
    )


def remove_stale_temporaries(directory: str | os.PathLike[str], pattern: str = f"*{TEMP_SUFFIX}") -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory`` (not recursive).

    Only names :func:`atomic_path` and :func:`~rdm_core.checkpoints.save_checkpoint` create
    (``.<final name>.<random>.tmp`` files and ``.<step dir>.<random>`` directories) match the
    default pattern; call it only on directories one process owns (e.g. under the run lock).
    """
    root = Path(directory)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for p in root.glob(pattern):
        if not p.name.startswith("."):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
