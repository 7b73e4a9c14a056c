"""Reading third-party files without executing them: tensors, numbers and strings only.

``torch.load(weights_only=True)`` never runs code from a pickle (it refuses every class it does
not know), and NumPy arrays are read with ``allow_pickle=False``. On top of that, whatever was
loaded must be a plain tree of tensors, numbers, strings, lists and string-keyed dicts: anything
else (a module, a dtype, a tensor subclass) is refused in one line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rdm_core.errors import ArtifactError

PLAIN_SCALARS = (bool, int, float, str, type(None))


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """The full SHA-256 of a file's bytes (hex), streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def source_record(path: str | Path) -> dict[str, str]:
    """``{"file": name, "sha256": hex}``: what ``imported_from`` holds in every header."""
    p = Path(path)
    return {"file": p.name, "sha256": file_sha256(p)}


def _refuse(path: Path, what: str) -> ArtifactError:
    return ArtifactError(
        f"{path} holds {what}; rdm only imports tensors, numbers and strings, and nothing in it was executed.",
        "import the authors' original file (a dict of tensors and numbers), not a re-saved object",
    )


def check_plain(obj: Any, path: Path, where: str = "") -> None:
    """Refuse anything but tensors, numbers, strings, lists/tuples and string-keyed dicts."""
    import torch

    if isinstance(obj, torch.Tensor):
        if type(obj) is not torch.Tensor and not isinstance(obj, torch.nn.Parameter):
            raise _refuse(path, f"a {type(obj).__name__} at {where or 'the top'}")
        return
    if isinstance(obj, PLAIN_SCALARS):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _refuse(path, f"a non-string key {key!r} at {where or 'the top'}")
            check_plain(value, path, f"{where}.{key}" if where else key)
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, path, f"{where}[{i}]")
        return
    raise _refuse(path, f"a {type(obj).__module__}.{type(obj).__name__} object at {where or 'the top'}")


def read_torch_file(path: str | Path) -> Any:
    """Load a ``.pt``/``.pth`` with ``torch.load(weights_only=True)`` and check it is plain data.

    Raises:
        ArtifactError: missing file, a pickled class/function (refused before anything runs), or
            an object that is not tensors, numbers and strings.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p} does not exist.", "check the path of the file to import")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=_zip_file(p))
    except pickle.UnpicklingError as exc:
        detail = _refused_global(str(exc))
        raise _refuse(p, "a pickled object that is not plain data" + (f" ({detail})" if detail else "")) from None
    except Exception as exc:
        raise ArtifactError(
            f"{p} is not a readable torch file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).",
            "check that the download is complete (compare its sha256 with the published one)",
        ) from None
    check_plain(obj, p)
    return obj


def _zip_file(path: Path) -> bool:
    """torch's zip container can be memory-mapped (large pools stay on disk until read)."""
    import zipfile

    return zipfile.is_zipfile(path)


def _refused_global(message: str) -> str | None:
    """The ``module.name`` torch's weights-only unpickler refused, when its message names one."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", message)
    return f"it refers to {m.group(1)}" if m else None


def read_npy(path: str | Path, *, mmap: bool = True) -> Any:
    """A NumPy ``.npy`` array read without pickle (memory-mapped by default).

    Raises:
        ArtifactError: missing file, or an object array (which would need pickle).
    """
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p} does not exist.", "check the path of the file to import")
    try:
        arr = np.load(str(p), mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _refuse(p, "a pickled object array") from None
        raise ArtifactError(f"{p} is not a readable .npy array ({exc}).", "check the download") from None
    if not isinstance(arr, np.ndarray):
        raise _refuse(p, f"a {type(arr).__name__} (an .npz archive?), not one array")
    return arr
