"""The authors' floor tables: controller floors and MMD_r14 floors, merged or per-encoder parts.

Both are JSON objects ``{encoder: value}``; a merged table holds every encoder, a part one. The
controller floors become rdm's ``floors.json``; the MMD_r14 floors (``m(val)``, already x1000) go
to ``eval/mmd_r14_floors.json``. Neither table says at which N it was computed: ``n`` is stored as
given on the command line (``--floors-n``), else ``None``, and ``rdm train`` refuses controller
floors without an N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdm_core import __version__ as rdm_version
from rdm_core.artifacts import read_json, write_json
from rdm_core.errors import ArtifactError
from rdm_core.safe_read import source_record
from rdm_import.authors import ENCODER_NAMES

FLOOR_KINDS = ("floors", "mmd_floors")
MMD_FLOORS_FILE = Path("eval") / "mmd_r14_floors.json"


def floor_kind(path: Path) -> str:
    """``mmd_floors`` for the authors' MMD_r14 tables (``mmdr14`` in the name or folder), else ``floors``."""
    return "mmd_floors" if "mmdr14" in path.name or path.parent.name == "mmdr14" else "floors"


def read_floor_table(path: Path) -> dict[str, float]:
    """``{rdm encoder name: value}`` from one authors' JSON table.

    Raises:
        ArtifactError: not a JSON object of finite numbers.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise ArtifactError(f"{path} is not a JSON object {{encoder: floor}}.", "pass the authors' floor JSON")
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ArtifactError(f"{path}: floor of {key!r} is {value!r}, not a finite number.", "check the file")
        out[ENCODER_NAMES.get(key, key)] = float(value)
    return out


def import_floor_tables(
    paths: Sequence[Path], out_dir: Path, kind: str, *, n: int | None = None, out_file: Path | None = None
) -> tuple[Path, dict[str, float], list[str]]:
    """Merge ``paths`` (merged tables or parts) into rdm's floors file; existing entries are kept.

    Returns:
        ``(file written, floors, fields the source did not record)``.
    """
    target = out_file or (out_dir / ("floors.json" if kind == "floors" else MMD_FLOORS_FILE))
    floors: dict[str, float] = {}
    origins: list[dict[str, str]] = []
    previous: dict[str, Any] = read_json(target) if target.is_file() else {}
    if previous and previous.get("n") != n:
        raise ArtifactError(
            f"{target} already holds floors at N={previous.get('n')}, these are imported at N={n}.",
            "import into another directory, or pass the same --floors-n",
        )
    floors.update(previous.get("floors") or {})
    origins.extend(previous.get("imported_from") or [])
    for path in paths:
        floors.update(read_floor_table(path))
        origins.append(source_record(path))
    table: dict[str, Any] = {
        "n": None if n is None else int(n),
        "draws": None,
        "seed": None,
        "floors": floors,
        "imported_from": origins,
        "rdm_version": rdm_version,
    }
    if kind == "mmd_floors":
        table["scale"] = 1000.0
    write_json(target, table)
    missing = ["draws", "seed"] + ([] if n is not None else ["n"])
    return target, floors, missing
