"""Stage records: what a finished stage was run with and what it left, to skip it next time.

``<run_dir>/stages/<name>.json`` holds the stage's fingerprint (its recipe key plus the records
of the stages before it) and a signature of every output (size and modification time of every
file, recursively). A stage is skipped when the fingerprint is the same and every output is
still exactly as the record says; anything else runs it again (and the stage resumes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_parts, read_json, write_json


def fingerprint_key(key: Any, upstream: list[dict[str, Any]]) -> str:
    """The fingerprint of a stage: its key and the records (fingerprints, outputs) it builds on."""
    parts = [json.dumps(key, sort_keys=True, default=str)]
    parts += [json.dumps({k: r.get(k) for k in ("fingerprint", "signatures")}, sort_keys=True) for r in upstream]
    return fingerprint_parts(parts)


def signature(path: Path) -> str | None:
    """Size and mtime of a file, or of every file under a directory; ``None`` when missing or empty."""
    if path.is_file():
        st = path.stat()
        return fingerprint_parts([f"{st.st_size}:{st.st_mtime_ns}"])
    if path.is_dir():
        rows = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                st = full.stat()
                rows.append(f"{full.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}")
        return fingerprint_parts(rows) if rows else None
    return None


def record_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "stages" / f"{name}.json"


def read_record(run_dir: Path, name: str) -> dict[str, Any]:
    path = record_path(run_dir, name)
    return read_json(path) if path.is_file() else {}


def is_current(record: dict[str, Any], fingerprint: str, outputs: list[Path]) -> bool:
    """The record is of a finished run with this fingerprint, and its outputs are untouched."""
    if record.get("status") != "ok" or record.get("fingerprint") != fingerprint:
        return False
    saved = record.get("signatures") or {}
    return all(saved.get(str(p)) is not None and saved.get(str(p)) == signature(p) for p in outputs)


def write_record(
    run_dir: Path, name: str, fingerprint: str, status: str, outputs: list[Path], result: dict[str, Any]
) -> dict[str, Any]:
    """Write (atomically) and return the record of a stage."""
    record = {
        "name": name,
        "status": status,
        "fingerprint": fingerprint,
        "signatures": {str(p): signature(p) for p in outputs},
        "result": result,
    }
    write_json(record_path(run_dir, name), record)
    return record
