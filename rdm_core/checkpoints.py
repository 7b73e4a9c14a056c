"""Run checkpoints: one directory per step, safetensors for tensors and JSON for the rest.

Layout (``<run_dir>/checkpoints/step_0000020/``)::

    model.safetensors      trainable module state_dict (what `rdm generate` / `rdm eval` load)
    state.safetensors      optimizer tensors, RNG states, controller tensors (flattened keys)
    state.json             step, optimizer hyper-parameters, controller scalars, anything JSON

A checkpoint directory is written under a temporary name and renamed into place, so a killed
run never leaves a half-written checkpoint under a final name. Every file carries its content
hash, and ``state.json`` (itself checksummed) records the hashes of the two tensor files, so a
flipped byte or a file swapped in from another step is refused when the checkpoint is read.
``state.json`` and the model header also record whether every weight is finite: rotation never
deletes the newest finite checkpoint, and ``rdm generate`` / ``rdm eval`` refuse non-finite
weights. :func:`load_generator_weights` reads these and, through the generator, third-party
checkpoint containers.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import load_tensors, read_json, save_tensors, stored_digest, write_json
from rdm_core.errors import ArtifactError, NonFiniteError
from rdm_core.write_failures import TEMP_SUFFIX

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn

STEP_DIR = re.compile(r"^step_(\d{7})$")
MODEL_FILE = "model.safetensors"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def checkpoint_dir(run_dir: str | os.PathLike[str], step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}"


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / STATE_JSON).exists() and (p / MODEL_FILE).exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def non_finite_tensors(state: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an Inf."""
    import torch

    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def is_finite_checkpoint(path: str | os.PathLike[str]) -> bool:
    """What a checkpoint's ``state.json`` records about its weights (older ones count as finite)."""
    try:
        return bool(read_json(Path(path) / STATE_JSON).get("finite", True))
    except ArtifactError:
        return False


def _rotate(run_dir: str | os.PathLike[str], keep: int) -> None:
    """Keep the newest ``keep`` checkpoints, plus the newest finite one if all of those diverged."""
    found = list_checkpoints(run_dir)
    kept = {p for _, p in found[-keep:]}
    if not any(is_finite_checkpoint(p) for p in kept):
        last_finite = next((p for _, p in reversed(found) if is_finite_checkpoint(p)), None)
        if last_finite is not None:
            kept.add(last_finite)
    for _, old in found:
        if old not in kept:
            shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    model_state: dict[str, Tensor],
    state_tensors: dict[str, Tensor],
    state_json: dict[str, Any],
    *,
    meta: dict[str, Any] | None = None,
    keep: int | None = None,
    finite: bool = True,
) -> Path:
    """Write one checkpoint atomically (the directory appears whole or not at all).

    Args:
        finite: ``False`` when the trainer knows these weights are diverged (the step that led
            here had a non-finite loss) even if every number in them is finite.

    ``keep`` newest checkpoints survive rotation, and so does the newest finite one when none
    of those is (a diverged run keeps something to go back to).
    """
    final = checkpoint_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent))
    finite = bool(finite) and not non_finite_tensors(model_state)
    try:
        files = {
            MODEL_FILE: save_tensors(tmp / MODEL_FILE, model_state, {"step": step, "finite": finite, **(meta or {})}),
            STATE_TENSORS: save_tensors(tmp / STATE_TENSORS, state_tensors, {"step": step}),
        }
        write_json(tmp / STATE_JSON, {"step": step, **state_json, "finite": finite, "files": files}, checksum=True)
        if final.exists():  # re-saving the same step after a resume
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if keep:
        _rotate(run_dir, keep)
    return final


def load_checkpoint(
    path: str | os.PathLike[str], device: str = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any]]:
    """(model state, state tensors, state JSON) of a checkpoint directory, every file verified.

    Raises:
        ArtifactError: an incomplete checkpoint, a file whose bytes changed since it was
            written, or a tensor file that belongs to another checkpoint.
    """
    p = Path(path)
    if not (p / STATE_JSON).exists():
        raise ArtifactError(
            f"{p} is not a complete rdm checkpoint (no {STATE_JSON}).",
            "pass a directory like runs/NAME/checkpoints/step_0000020",
        )
    fix = corrupt_checkpoint_fix(p)
    state_json = read_json(p / STATE_JSON, fix=fix)
    for name, digest in (state_json.pop("files", None) or {}).items():
        if stored_digest(p / name) != digest:
            raise ArtifactError(f"{p / name} is not the file this checkpoint wrote (its content hash differs).", fix)
    model, _ = load_tensors(p / MODEL_FILE, device, fix=fix)
    state, _ = load_tensors(p / STATE_TENSORS, device, fix=fix)
    return model, state, state_json


def corrupt_checkpoint_fix(path: Path) -> str:
    """What to do about a damaged checkpoint: drop it and continue from the previous one."""
    return (
        f"delete {path} and continue from the previous checkpoint (`rdm train RECIPE --resume`), "
        "or pass an earlier checkpoint"
    )


def resolve_model_file(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory, a run directory (latest checkpoint) or a model file -> model file."""
    p = Path(path)
    if p.is_file():
        return p
    if (p / MODEL_FILE).is_file():
        return p / MODEL_FILE
    latest = latest_checkpoint(p)
    if latest is not None:
        return latest / MODEL_FILE
    raise ArtifactError(
        f"no model weights at {p}.",
        "pass a model.safetensors file, a checkpoint directory or a run directory with checkpoints",
    )


def load_model_weights(path: str | os.PathLike[str], module: nn.Module, *, strict: bool = True) -> Path:
    """Load trained weights into ``module`` (the generator's trainable module); returns the file."""
    file = resolve_model_file(path)
    state, meta = load_tensors(file, fix=corrupt_checkpoint_fix(file.parent))
    bad = non_finite_tensors(state)
    if bad or meta.get("finite") is False:
        what = f"NaN/Inf in {len(bad)} tensor(s), e.g. {bad[0]}" if bad else "written after non-finite steps"
        raise NonFiniteError(
            f"{file} holds non-finite weights ({what}): the run diverged.",
            f"use an earlier checkpoint with finite weights{_finite_hint(file)}",
        )
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise ArtifactError(
            f"{file} does not match the generator ({first[0].strip()}).",
            "use the recipe (and generator args) the checkpoint was trained with",
        ) from exc
    return file


def _finite_hint(file: Path) -> str:
    run_dir = file.parent.parent.parent if file.parent.parent.name == "checkpoints" else None
    if run_dir is None:
        return ""
    finite = [p for _, p in list_checkpoints(run_dir) if is_finite_checkpoint(p)]
    return f", e.g. {finite[-1]}" if finite else " (this run has none: lower train.lr and train again)"


def rdm_model_file(path: str | os.PathLike[str]) -> Path | None:
    """The ``model.safetensors`` an rdm run, checkpoint directory or model file resolves to, or
    ``None`` when ``path`` is not an rdm checkpoint (a third-party container or weights folder)."""
    from rdm_core.artifacts import read_meta

    p = Path(path)
    if p.is_dir():
        if (p / MODEL_FILE).is_file():
            return p / MODEL_FILE
        latest = latest_checkpoint(p)
        return latest / MODEL_FILE if latest is not None else None
    if p.is_file() and p.suffix == ".safetensors":
        try:
            meta = read_meta(p)
        except ArtifactError:
            return None
        return p if "step" in meta else None  # save_checkpoint records the step of every model file
    return None


def load_generator_weights(path: str | os.PathLike[str], generator: Any, *, format: str = "auto") -> Path:
    """Put trained weights from any checkpoint a user may hold into ``generator``.

    * an rdm run directory (its latest checkpoint), checkpoint directory or checkpoint
      ``model.safetensors``: loaded strictly into ``generator.trainable_module()``;
    * anything else (the paper authors' ``{"model": state_dict, "step"}`` ``.pth``, a safetensors
      state dict in another key layout, a weights folder): handed to the generator's own
      ``load_weights(path, format)``, which knows its model's layouts.

    Raises:
        WeightsNotFoundError: nothing at ``path``.
        ArtifactError: weights that do not fit the generator.
    """
    from rdm_core.errors import WeightsNotFoundError

    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsNotFoundError(f"no checkpoint at {p}.", "pass a run directory, a checkpoint directory or a file")
    model_file = rdm_model_file(p) if format == "auto" else None
    if model_file is not None:
        return load_model_weights(model_file, generator.trainable_module())
    try:
        generator.load_weights(str(p), format=format)
    except RuntimeError as exc:  # torch's state-dict shape mismatch, raised even by non-strict loads
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ArtifactError(
            f"{p} does not fit the generator ({detail}).",
            "use the checkpoint of this recipe's model (same size and variant)",
        ) from None
    bad = non_finite_tensors(generator.trainable_module().state_dict())
    if bad:
        raise NonFiniteError(
            f"{p} holds non-finite weights (NaN/Inf in {len(bad)} tensor(s), e.g. {bad[0]}).",
            "use a checkpoint whose weights are finite",
        )
    return p
