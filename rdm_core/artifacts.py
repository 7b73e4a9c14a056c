"""Artifact IO: safetensors tensors + JSON metadata, atomic writes, content fingerprints.

Every file rdm writes goes through here, so that every artifact is (a) pickle-free, (b) written
to a temporary file and renamed into place (a killed job never leaves a half-written file under
the final name), and (c) self-describing: the JSON metadata rides in the safetensors header under
the key ``rdm``.
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

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

META_KEY = "rdm"
FORMAT_VERSION = 1


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist.")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{p} is not valid JSON ({exc}); the file is corrupt or truncated.",
            "delete it and re-run the command that wrote it",
        ) from exc


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
    """Append one JSON line and flush it (metrics logs survive a kill)."""
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


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
) -> None:
    """Save ``tensors`` with JSON ``meta`` in the safetensors header, atomically.

    Tensors are made contiguous and moved to CPU; shared storage is cloned (safetensors refuses
    aliased tensors).
    """
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {META_KEY: json.dumps({"format_version": FORMAT_VERSION, **(meta or {})}, default=_json_default)}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=header)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a safetensors artifact, without reading its tensors."""
    from safetensors import safe_open

    p = _existing(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as exc:
        raise _corrupt(p, exc) from exc
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _corrupt(p, exc) from exc


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load every tensor and the metadata of a safetensors artifact.

    Raises:
        ArtifactError: the file is missing, truncated or not a safetensors file.
    """
    from safetensors.torch import load_file

    p = _existing(path)
    meta = read_meta(p)
    try:
        tensors = load_file(str(p), device=device)
    except Exception as exc:
        raise _corrupt(p, exc) from exc
    return tensors, meta


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist.")
    return p


def _corrupt(p: Path, exc: BaseException) -> ArtifactError:
    return ArtifactError(
        f"{p} is corrupt or truncated ({type(exc).__name__}: {exc}).",
        "delete it and re-run the command that wrote it",
    )


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
