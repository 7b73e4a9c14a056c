"""The build manifest: per-item source fingerprints, encoder specs, shards and outputs.

Several processes may build disjoint ``--encoders`` subsets of one recipe into one directory.
Each writes only its own part files (``manifest_parts/<encoder>.json``,
``manifest_parts/sources_<split>.json``, ``floors_parts/<encoder>.json``); the merged
``manifest.json`` and ``floors.json`` are rebuilt from all parts under an exclusive file lock,
so whichever process merges last writes the complete table.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rdm_core import __version__
from rdm_core.artifacts import fingerprint_parts, read_json, write_json
from rdm_core.errors import ArtifactError
from rdm_references.sources.optional import stat_tokens

MANIFEST = "manifest.json"
FLOORS = "floors.json"


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<root>/.build.lock`` (serialises merges across processes)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any] | None:
    """A manifest file, or ``None`` when absent or corrupt (said once; its owner's next build rewrites it)."""
    try:
        return read_json(path) if path.is_file() else None
    except ArtifactError as exc:
        from rdm_core.console import err_console

        err_console.print(
            f"warning: {exc.problem} Ignored: the next `rdm reference build` of that encoder rewrites it.",
            style="yellow",
            soft_wrap=True,
        )
        return None


class ManifestStore:
    """Reads and writes the manifest parts of one references directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.parts = self.root / "manifest_parts"
        self.floor_parts = self.root / "floors_parts"

    # -- parts -------------------------------------------------------------------------------
    def encoder_part(self, encoder: str) -> dict[str, Any]:
        return _read(self.parts / f"{encoder}.json") or {}

    def write_encoder_part(self, encoder: str, data: dict[str, Any]) -> None:
        write_json(self.parts / f"{encoder}.json", data, checksum=True)

    def source_part(self, split: str) -> dict[str, Any]:
        return _read(self.parts / f"sources_{split}.json") or {}

    def write_source_part(self, split: str, data: dict[str, Any]) -> None:
        write_json(self.parts / f"sources_{split}.json", data, checksum=True)

    def write_extra_part(self, name: str, data: dict[str, Any]) -> None:
        write_json(self.parts / f"extra_{name}.json", data, checksum=True)

    def write_floor_part(self, encoder: str, data: dict[str, Any]) -> None:
        write_json(self.floor_parts / f"{encoder}.json", data, checksum=True)

    def floor_part(self, encoder: str) -> dict[str, Any]:
        return _read(self.floor_parts / f"{encoder}.json") or {}

    # -- merged views ------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """The merged manifest (empty dict when none was written yet)."""
        return _read(self.root / MANIFEST) or {}

    def merge(self, settings: dict[str, Any], n_rollout: int) -> dict[str, Any]:
        """Rebuild ``manifest.json`` and ``floors.json`` from every part, under the lock.

        Args:
            settings: the recipe settings the outputs depend on (recorded verbatim).
            n_rollout: the training N; floor parts computed at another N are left out.
        """
        with locked(self.root):
            sources, encoders, extras = {}, {}, {}
            for path in sorted(self.parts.glob("*.json")) if self.parts.is_dir() else []:
                data = _read(path)
                if data is None:
                    continue
                stem = path.stem
                if stem.startswith("sources_"):
                    sources[stem[len("sources_") :]] = data
                elif stem.startswith("extra_"):
                    extras[stem[len("extra_") :]] = data
                else:
                    encoders[stem] = data
            floors = {}
            for path in sorted(self.floor_parts.glob("*.json")) if self.floor_parts.is_dir() else []:
                data = _read(path)
                if data and data.get("n") == n_rollout and "floor" in data:
                    floors[path.stem] = float(data["floor"])
            floor_table = {"n": int(n_rollout), "floors": floors}
            if floors:
                write_json(self.root / FLOORS, floor_table, checksum=True)
            manifest = {
                "rdm_version": __version__,
                "settings": settings,
                "sources": sources,
                "encoders": encoders,
                "extras": extras,
                "floors": floor_table if floors else None,
            }
            write_json(self.root / MANIFEST, manifest, checksum=True)
            return manifest


# -- item fingerprints ------------------------------------------------------------------------


def item_fingerprints(
    source: Any, previous: dict[str, Any] | None = None, *, description: str = "fingerprints"
) -> list[list[str]]:
    """``[key, fingerprint, stat_token]`` for every item of ``source``.

    A previous manifest's entry is reused when the item's cheap ``stat_token`` (size, mtime)
    is unchanged, which keeps re-runs over large folders from re-hashing every file.
    """
    from rdm_core.console import progress

    old: dict[str, tuple[str, str]] = {}
    for key, fp, token in (previous or {}).get("items", []):
        old[key] = (fp, token)
    stat = stat_tokens(source)
    rows: list[list[str]] = []
    with progress(transient=True) as bar:
        task = bar.add_task(description, total=len(source), status="")
        for i in range(len(source)):
            key = source.key(i)
            token = stat(i)
            hit = old.get(key)
            fp = hit[0] if hit is not None and token and hit[1] == token else source.fingerprint(i)
            rows.append([key, fp, token or ""])
            if i % 256 == 0:
                bar.update(task, completed=i + 1)
        bar.update(task, completed=len(source))
    return rows


def items_fingerprint(rows: list[list[str]]) -> str:
    return fingerprint_parts(f"{k}\t{fp}" for k, fp, _ in rows)


def diff_items(old: list[list[str]], new: list[list[str]]) -> dict[str, list[str]]:
    """Keys that were ``added``, went ``missing`` or ``changed`` content between two listings."""
    before = {k: fp for k, fp, *_ in old}
    after = {k: fp for k, fp, *_ in new}
    return {
        "added": sorted(k for k in after if k not in before),
        "missing": sorted(k for k in before if k not in after),
        "changed": sorted(k for k in after if k in before and before[k] != after[k]),
    }
