"""The precomputed context pool: prompts -> float16 ``(N, ctx_len, dim)`` on disk, memory-mapped.

Training never loads Qwen3: it draws rows of this pool. Files, for ``POOL = <dir>/<name>.npy``:

* ``<name>.npy``: the contexts, a NumPy ``.npy`` array (float16). NumPy's format is a fixed header
  followed by raw data, so it can be written *in place, chunk by chunk* (resumable builds) and read
  with ``np.load(mmap_mode="r", allow_pickle=False)`` without loading 60+ GB into RAM. safetensors
  would need the whole tensor in memory to write and cannot be extended in place; the pool is
  therefore the one rdm artifact that is not safetensors (it is still pickle-free).
* ``<name>_meta.json``: ``{n, ctx_len, dim, variant, dtype, layers, prompts_fingerprint, ...}``.
* ``<name>_prompts.json``: the prompts, row-aligned (captions for logging and the joint feature).

A build writes ``<name>.npy.partial`` plus ``<name>.progress.json`` (rows done, fingerprint) after
every chunk; a killed build resumes from the last finished chunk, and the final files appear only
once complete (meta first, then the atomic rename of the array).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rdm_core.artifacts import fingerprint_parts, read_json, write_json
from rdm_core.errors import ArtifactError, RdmError

POOL_VERSION = 1


def pool_files(path: str | Path) -> dict[str, Path]:
    """The files of a pool named by its ``.npy`` path (a missing suffix is added)."""
    p = Path(path)
    if p.suffix != ".npy":
        p = p.with_name(p.name + ".npy")
    stem = p.with_suffix("")
    return {
        "array": p,
        "meta": stem.with_name(stem.name + "_meta.json"),
        "prompts": stem.with_name(stem.name + "_prompts.json"),
        "partial": p.with_name(p.name + ".partial"),
        "progress": stem.with_name(stem.name + ".progress.json"),
    }


def prompts_fingerprint(prompts: Sequence[str], ctx_len: int, extra: str = "") -> str:
    return fingerprint_parts([str(ctx_len), extra, *prompts])


def build_context_pool(
    prompts: Sequence[str],
    encode: Callable[[list[str]], Tensor],
    out: str | Path,
    *,
    ctx_len: int,
    dim: int,
    variant: str,
    batch_size: int = 16,
    info: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> Path:
    """Encode ``prompts`` into a float16 pool at ``out``; resumable; returns the ``.npy`` path.

    Args:
        prompts: row-aligned prompts.
        encode: ``list[str] -> (b, ctx_len, dim)`` contexts (any float dtype).
        out: pool path (``.npy``).
        ctx_len, dim, variant: recorded in the meta JSON and checked on resume and load.
        batch_size: prompts per chunk (one progress save per chunk).
        info: extra JSON metadata (model id, layers, ...), part of the resume fingerprint.
    """
    from rdm_core.console import progress

    files = pool_files(out)
    prompts = list(prompts)
    fp = prompts_fingerprint(prompts, ctx_len, json.dumps(info or {}, sort_keys=True) + variant)
    n = len(prompts)
    if files["array"].exists() and files["meta"].exists() and read_json(files["meta"]).get("prompts_fingerprint") == fp:
        return files["array"]  # already built from the same prompts and settings
    done = 0
    if files["partial"].exists() and files["progress"].exists():
        state = read_json(files["progress"])
        if state.get("prompts_fingerprint") == fp and state.get("shape") == [n, ctx_len, dim]:
            done = int(state["done"])
    if done:
        arr = np.lib.format.open_memmap(files["partial"], mode="r+")
    else:
        files["partial"].parent.mkdir(parents=True, exist_ok=True)
        arr = np.lib.format.open_memmap(files["partial"], mode="w+", dtype=np.float16, shape=(n, ctx_len, dim))
    with progress() as bar:
        task = bar.add_task(
            "context pool", total=n, completed=done, status=f"L={ctx_len} d={dim}", visible=show_progress
        )
        for start in range(done, n, batch_size):
            stop = min(start + batch_size, n)
            ctx = encode(prompts[start:stop])
            if tuple(ctx.shape) != (stop - start, ctx_len, dim):
                raise RdmError(
                    f"the text encoder returned {tuple(ctx.shape)}, expected {(stop - start, ctx_len, dim)}.",
                    "check ctx_len and that the text encoder matches the generator",
                )
            if not torch.isfinite(ctx).all():
                from rdm_core.errors import NonFiniteError

                raise NonFiniteError(
                    f"non-finite contexts for prompts {start}..{stop - 1}.", "check the text encoder weights and dtype"
                )
            arr[start:stop] = ctx.to(torch.float16).cpu().numpy()
            arr.flush()
            write_json(files["progress"], {"done": stop, "prompts_fingerprint": fp, "shape": [n, ctx_len, dim]})
            bar.update(task, completed=stop)
    arr.flush()
    del arr
    write_json(files["prompts"], prompts)
    write_json(
        files["meta"],
        {
            "n": n,
            "ctx_len": ctx_len,
            "dim": dim,
            "variant": variant,
            "dtype": "float16",
            "prompts_fingerprint": fp,
            "pool_version": POOL_VERSION,
            **(info or {}),
        },
    )
    with open(files["partial"], "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(files["partial"], files["array"])
    files["progress"].unlink(missing_ok=True)
    return files["array"]


class ContextPool:
    """A memory-mapped context pool; rows are read on demand.

    Args:
        path: the pool's ``.npy`` path.
        expect: values the meta must have (e.g. ``{"ctx_len": 48, "dim": 7680}``).
    """

    def __init__(self, path: str | Path, expect: dict[str, Any] | None = None) -> None:
        files = pool_files(path)
        if not files["array"].exists() or not files["meta"].exists():
            hint = (
                " (a build is in progress or was interrupted: rerun it to resume)" if files["partial"].exists() else ""
            )
            raise ArtifactError(
                f"context pool {files['array']} (or its _meta.json) does not exist{hint}.",
                "build it with `rdm context build RECIPE --prompts FILE -o POOL.npy`",
            )
        self.path = files["array"]
        self.meta: dict[str, Any] = read_json(files["meta"])
        self.array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        shape = (self.meta.get("n"), self.meta.get("ctx_len"), self.meta.get("dim"))
        if tuple(self.array.shape) != shape:
            raise ArtifactError(
                f"{self.path} has shape {tuple(self.array.shape)} but its meta says {shape}.",
                "the pool is corrupt: delete it and rebuild with `rdm context build`",
            )
        for key, want in (expect or {}).items():
            if self.meta.get(key) != want:
                raise ArtifactError(
                    f"context pool {self.path} has {key}={self.meta.get(key)!r}, the generator needs {want!r}.",
                    f"rebuild the pool with the generator's settings (`rdm context build`), or set {key} to match",
                )
        self._prompts_file = files["prompts"]
        self._prompts: list[str] | None = None

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def ctx_len(self) -> int:
        return int(self.meta["ctx_len"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def prompts(self) -> list[str] | None:
        """Row-aligned prompts, when the builder stored them."""
        if self._prompts is None and self._prompts_file.exists():
            self._prompts = list(read_json(self._prompts_file))
        return self._prompts

    def rows(self, index: Tensor) -> Tensor:
        """Contexts of rows ``index`` as a float32 ``(len(index), ctx_len, dim)`` tensor."""
        idx = index.detach().cpu().long().numpy()
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise RdmError(
                f"context rows {int(idx.min())}..{int(idx.max())} outside a pool of {len(self)}.",
                "draw indices in [0, len(pool))",
            )
        order = np.argsort(idx, kind="stable")  # sorted reads are sequential on disk
        out = np.empty((idx.size, self.ctx_len, self.dim), dtype=np.float16)
        out[order] = self.array[idx[order]]
        return torch.from_numpy(out).float()
