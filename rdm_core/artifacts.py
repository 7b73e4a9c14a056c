"""Artifact IO: safetensors tensors + JSON metadata, atomic writes, content hashes.

Every file rdm writes goes through here, so that every artifact is (a) pickle-free, (b) written
to a temporary file and renamed into place (a killed job never leaves a half-written file under
the final name; a full disk leaves nothing and says so), (c) self-describing: the JSON metadata
rides in the safetensors header under the key ``rdm``, and (d) self-verifying: the SHA-256 of
the metadata and of every tensor's bytes is stored in that header (``content_sha256``) when the
file is written and checked every time :func:`load_tensors` reads it, so flipped bytes are refused in
one line instead of flowing into a number. JSON state files opt in the same way
(``write_json(..., checksum=True)``). ``docs/reliability.md`` lists what is verified where.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.errors import ArtifactError, RdmError
from rdm_core.write_failures import TEMP_SUFFIX, disk_full, is_disk_full

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

META_KEY = "rdm"
# The content hash, inside the ``rdm`` header of safetensors files and in JSON state files written
# with checksum=True. Version 2 files always carry it; version 1 files (older) load unverified.
HASH_KEY = "content_sha256"
FORMAT_VERSION = 2
REWRITE_FIX = "delete it and re-run the command that wrote it"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The temporary file is removed on any failure. A full disk (``ENOSPC``/``EDQUOT``, also when
    raised inside a writer library) becomes one :class:`DiskFullError` naming the directory and
    its free space.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full(final, exc) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike[str], obj: Any, *, checksum: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically.

    Args:
        path: the file.
        obj: JSON-serialisable data.
        checksum: store the SHA-256 of the content under ``content_sha256`` (``obj`` must be a
            dict); :func:`read_json` then refuses the file if a byte of it changed.
    """
    data = obj
    if checksum:
        if not isinstance(obj, Mapping):
            raise TypeError("write_json(checksum=True) needs a dict")
        data = {**obj, HASH_KEY: _json_digest(obj)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_digest(obj: Mapping[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in obj.items() if k != HASH_KEY}, sort_keys=True, default=_json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_json(path: str | os.PathLike[str], *, fix: str | None = None) -> Any:
    """Read a JSON file; a ``content_sha256`` recorded at write time is verified and removed.

    Args:
        path: the file.
        fix: what the user should do when the file is corrupt (default: re-run its writer).

    Raises:
        ArtifactError: missing file, invalid JSON, or content that no longer matches its hash.
    """
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist.")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{p} is not valid JSON ({exc}); the file is corrupt or truncated.", fix or REWRITE_FIX
        ) from None
    if isinstance(data, dict) and HASH_KEY in data:
        stored = data.pop(HASH_KEY)
        if stored != _json_digest(data):
            raise corrupt_content(p, fix)
    return data


def corrupt_content(path: Path, fix: str | None = None) -> ArtifactError:
    """The one-line error for a file whose bytes no longer match the hash stored when written."""
    return ArtifactError(
        f"{path} is corrupt: its content no longer matches the SHA-256 recorded when it was written "
        "(flipped bytes on disk or in a copy).",
        fix or REWRITE_FIX,
    )


def stat_token(path: str | os.PathLike[str]) -> str:
    """Cheap change token of a file (size and mtime): when unchanged, a stored content hash may be reused."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    skip_invalid: bool = False,
    fix: str = "write one JSON value per line",
    error: type[RdmError] = ArtifactError,
) -> list[tuple[int, Any]]:
    """The values of a JSON-lines file as ``(line number, value)`` pairs; blank lines are skipped.

    Args:
        path: the file (UTF-8).
        skip_invalid: skip lines that are not valid JSON instead of refusing the file. Only for
            logs rdm appends to itself (``metrics.jsonl``), whose last line a kill may have cut.
        fix: the fix shown when a line is not valid JSON.
        error: the error class raised (e.g. :class:`~rdm_core.errors.RecipeError` for a file a
            recipe names); callers check the fields of each value themselves.

    Raises:
        ArtifactError (or ``error``): the file is missing, or a line is not valid JSON.
    """
    p = Path(path)
    if not p.is_file():
        raise error(f"{p} does not exist.", "check the path")
    rows: list[tuple[int, Any]] = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            if skip_invalid:
                continue
            raise error(f"{p}:{lineno} is not valid JSON ({exc.msg}).", fix) from None
    return rows


def append_jsonl(path: str | os.PathLike[str], row: Mapping[str, Any]) -> None:
    """Append one JSON line and flush it (metrics logs survive a kill; readers skip a cut line)."""
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(row, default=_json_default) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(Path(path), exc) from None
        raise


def _json_default(obj: Any) -> Any:
    """JSON form of the non-JSON values rdm logs: tensors, numpy values, sets, tuples, paths."""
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    # A tensor or numpy value can only exist once its library is imported: look there instead of
    # importing torch (seconds) to serialise a plain dict.
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if (torch is not None and isinstance(obj, torch.Tensor)) or (
        np is not None and isinstance(obj, (np.ndarray, np.generic))
    ):
        return obj.tolist()  # a scalar for 0-dim tensors and numpy scalars, nested lists otherwise
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def save_tensors(
    path: str | os.PathLike[str], tensors: Mapping[str, Tensor], meta: Mapping[str, Any] | None = None
) -> str:
    """Save ``tensors`` with JSON ``meta`` in the safetensors header, atomically.

    Tensors are made contiguous and moved to CPU; shared storage is cloned (safetensors refuses
    aliased tensors). The content hash (metadata + every tensor) is computed from memory before
    the write and stored in the metadata under ``content_sha256``.

    Returns:
        The content hash (hex SHA-256), e.g. for a manifest that pairs files.
    """
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    # through JSON and back, so the hash is taken over exactly what a reader will parse
    data = json.loads(json.dumps({"format_version": FORMAT_VERSION, **(meta or {})}, default=_json_default))
    data.pop(HASH_KEY, None)
    digest = content_digest(_canonical(data), clean)
    with atomic_path(path) as tmp:
        # one metadata key: safetensors writes several in an arbitrary order (same input, other bytes)
        save_file(clean, str(tmp), metadata={META_KEY: json.dumps({**data, HASH_KEY: digest})})
    return digest


def _canonical(meta: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in meta.items() if k != HASH_KEY}, sort_keys=True)


def _header(p: Path) -> dict[str, Any]:
    """The parsed ``rdm`` metadata of a safetensors file, content hash included ({} if none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as exc:
        raise _corrupt(p, exc) from exc
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _corrupt(p, exc) from exc
    if not isinstance(meta, dict):
        raise _corrupt(p, ValueError("the rdm header is not a JSON object"))
    return meta


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a safetensors artifact, without reading its tensors (not verified:
    the content hash covers the tensors too; :func:`load_tensors` verifies)."""
    meta = _header(_existing(path))
    meta.pop(HASH_KEY, None)
    return meta


def stored_digest(path: str | os.PathLike[str]) -> str | None:
    """The content hash recorded in a safetensors artifact's header (``None``: not recorded)."""
    return _header(_existing(path)).get(HASH_KEY)


def load_tensors(
    path: str | os.PathLike[str], device: str = "cpu", *, fix: str | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load every tensor and the metadata of a safetensors artifact, verifying its content hash.

    Args:
        path: the file.
        device: where the tensors go (verification hashes the CPU copy first).
        fix: what to tell the user when the file is corrupt, e.g. the command that rebuilds it.

    Raises:
        ArtifactError: the file is missing, truncated, not a safetensors file, or its bytes no
            longer match the hash recorded when it was written.
    """
    from safetensors.torch import load_file

    p = _existing(path)
    meta = _header(p)
    stored = meta.pop(HASH_KEY, None)
    try:
        tensors = load_file(str(p), device="cpu")
    except Exception as exc:
        raise _corrupt(p, exc, fix) from exc
    if stored is None and int(meta.get("format_version", 1) or 1) >= 2:
        raise corrupt_content(p, fix)  # a version-2 file always records its hash
    if stored is not None and stored != content_digest(_canonical(meta), tensors):
        raise corrupt_content(p, fix)
    if device != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors, meta


# -- content hashes -------------------------------------------------------------------------

HASH_BLOCK = 1 << 26  # 64 MiB pieces, hashed in parallel (hashlib releases the GIL)


def _byte_view(t: Tensor) -> Any:
    import torch

    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def _sha256(block: Any) -> str:
    return hashlib.sha256(block).hexdigest()


def content_digest(meta_json: str, tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over the metadata text and every tensor (name, dtype, shape, bytes), name-sorted.

    Tensors are cut into 64 MiB pieces hashed on up to ``torch.get_num_threads()`` (max 8)
    threads, so a multi-GB checkpoint hashes at several times the single-core rate.
    """
    import torch

    names = sorted(tensors)
    pieces: list[tuple[int, Any]] = []
    for i, name in enumerate(names):
        view = _byte_view(tensors[name])
        for start in range(0, max(len(view), 1), HASH_BLOCK):
            pieces.append((i, view[start : start + HASH_BLOCK]))
    total = sum(len(b) for _, b in pieces)
    workers = max(1, min(8, torch.get_num_threads()))
    if workers > 1 and total > 4 * HASH_BLOCK:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            digests = list(pool.map(_sha256, (b for _, b in pieces)))
    else:
        digests = [_sha256(b) for _, b in pieces]
    per_tensor: dict[int, list[str]] = {}
    for (i, _), d in zip(pieces, digests, strict=True):
        per_tensor.setdefault(i, []).append(d)
    h = hashlib.sha256(meta_json.encode())
    for i, name in enumerate(names):
        t = tensors[name]
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0{','.join(per_tensor.get(i, []))}".encode())
    return h.hexdigest()


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist.")
    return p


def _corrupt(p: Path, exc: BaseException, fix: str | None = None) -> ArtifactError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ArtifactError(f"{p} is corrupt or truncated ({type(exc).__name__}: {detail}).", fix or REWRITE_FIX)


# -- fingerprints ---------------------------------------------------------------------------


def fingerprint_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 (first 16 hex digits) of a file's content, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprint_tensor(t: Tensor) -> str:
    """Content hash of a tensor (dtype, shape and bytes)."""
    cpu = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{cpu.dtype}{tuple(cpu.shape)}".encode())
    h.update(cpu.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint_parts(parts: Iterable[str]) -> str:
    """Combine several fingerprints (or any strings) into one, order-sensitive."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
