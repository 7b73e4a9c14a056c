"""Reading and writing pMF weights in the public ``.pth`` layouts and in rdm's safetensors.

Two public layouts exist:

- **native**: ``{"model": state_dict, "step": int}`` with the keys of :mod:`rdm_pmf.network`
  (``*.linear.weight``, ``*.embedding.weight``, type tokens ``(n, D)``, no rotary table). The
  post-trained ImageNet checkpoints and FD-Loss's trainer write this.
- **flax-style** (the PyTorch port of the original pMF release): linear layers under
  ``._flax_linear.``, the class table under ``._flax_embedding.``, type tokens ``(1, n, D)``, a
  stored complex rotary table ``rope_freqs``, and usually the v-head that the one-step generator
  does not have.

:func:`convert_public_state` maps either to the native keys (it is a no-op on native files).
Reading ``.pth`` goes through :func:`rdm_core.safe_read.read_torch_file`
(``torch.load(weights_only=True)``): tensors and plain containers only, never pickled objects. Writing the public layouts uses ``torch.save`` of plain
tensors, which ``weights_only`` readers accept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.artifacts import atomic_path
from rdm_core.errors import ArtifactError
from rdm_core.safe_read import read_torch_file

FLAX_LINEAR, NATIVE_LINEAR = "._flax_linear.", ".linear."
FLAX_EMBEDDING, NATIVE_EMBEDDING = "._flax_embedding.", ".embedding."
ROPE_KEY = "rope_freqs"
TOKEN_SUFFIX = "_tokens"


@dataclass
class LoadReport:
    """What a weight load did: the layout found, and keys dropped, ignored or missing."""

    file: str
    layout: str
    loaded: int = 0
    dropped: list[str] = field(default_factory=list)  # removed by the conversion (rotary tables)
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model: ignored
    missing: list[str] = field(default_factory=list)  # in the model, not in the file

    def summary(self) -> str:
        def some(keys: list[str]) -> str:
            return f"{len(keys)}" + (f" ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys else "")

        return (
            f"{self.file}: {self.layout} layout, {self.loaded} tensors loaded; dropped {some(self.dropped)}, "
            f"ignored {some(self.unexpected)}, missing {some(self.missing)}"
        )


def convert_public_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], list[str]]:
    """Public (either layout) -> native keys and shapes; returns ``(state, dropped keys)``.

    Per entry, in order: ``._flax_linear.`` -> ``.linear.``; ``._flax_embedding.`` ->
    ``.embedding.``; a key ending in ``_tokens`` with a ``(1, n, D)`` tensor becomes ``(n, D)``
    (``pos_embed`` keeps its ``(1, S, D)``); keys containing ``rope_freqs`` are dropped (the
    tables are recomputed). Values and dtypes are kept.
    """
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        new = key.replace(FLAX_LINEAR, NATIVE_LINEAR).replace(FLAX_EMBEDDING, NATIVE_EMBEDDING)
        if ROPE_KEY in new:
            dropped.append(key)
            continue
        if not isinstance(value, Tensor):
            raise ArtifactError(
                f"weights entry {key!r} is a {type(value).__name__}, not a tensor.",
                "pass the model's state_dict (or a file whose 'model' entry is one)",
            )
        if new.endswith(TOKEN_SUFFIX) and value.dim() == 3 and value.shape[0] == 1:
            value = value[0]
        out[new] = value
    return out, dropped


def detect_layout(state: dict[str, Any]) -> str:
    """``flax-style`` if any key or shape carries the port's conventions, else ``native``."""
    for key, value in state.items():
        if FLAX_LINEAR in key or FLAX_EMBEDDING in key or ROPE_KEY in key:
            return "flax-style"
        if key.endswith(TOKEN_SUFFIX) and isinstance(value, Tensor) and value.dim() == 3:
            return "flax-style"
    return "native"


def read_public(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state dict of a public ``.pth``: its ``"model"`` entry when present, else the dict itself."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(
            f"pmf weights {p} do not exist.",
            "download the public checkpoint (model.pth) and set generator.weights to its path",
        )
    obj = read_torch_file(p)  # torch.load(weights_only=True), memory-mapped, plain data only
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise ArtifactError(f"{p} holds no state dict.", "pass the checkpoint written by the pMF/FD-Loss/RDM trainers")
    return obj


def load_into(module: nn.Module, state: dict[str, Tensor], file: str, layout: str, dropped: list[str]) -> LoadReport:
    """Copy ``state`` into ``module``; refuse shape mismatches and missing keys, report ignored ones.

    The public loader silently keeps random values for missing keys; rdm refuses instead, since a
    partly random generator would produce numbers that look valid.
    """
    own = module.state_dict()
    report = LoadReport(file=file, layout=layout, dropped=dropped)
    report.unexpected = [k for k in state if k not in own]
    report.missing = [k for k in own if k not in state]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise ArtifactError(
            f"{file} does not fit this pmf configuration: {len(wrong)} shape mismatches, e.g. {wrong[0]} (file vs model).",
            "set generator.args (preset / config) to the configuration the checkpoint was trained with",
        )
    if report.missing:
        raise ArtifactError(
            f"{report.summary()}: the model needs every missing key.",
            "use a checkpoint of this configuration (a v-head-free model loads from files with or without a v-head)",
        )
    known = {k: v for k, v in state.items() if k in own}
    module.load_state_dict(known, strict=True)
    report.loaded = len(known)
    return report


def to_flax_style(state: dict[str, Tensor], rope: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """Native keys -> the flax-style port layout (inverse of :func:`convert_public_state`).

    The rotary table is written as ``net.rope_freqs``: complex ``cos + i sin`` per token and pair.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for native, flax in ((NATIVE_LINEAR, FLAX_LINEAR), (NATIVE_EMBEDDING, FLAX_EMBEDDING)):
            stem, _, leaf = key.rpartition(".")
            if (stem + ".").endswith(native):
                key = stem[: -len(native) + 1] + flax + leaf
                break
        if key.endswith(TOKEN_SUFFIX):
            value = value[None]
        out[key] = value
    cos, sin = rope
    out[f"net.{ROPE_KEY}"] = torch.complex(cos, sin)
    return out


def write_public(path: str | os.PathLike[str], state: dict[str, Tensor], step: int = 0) -> None:
    """``{"model": state, "step": step}`` with ``torch.save``, written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"model": {k: v.detach().cpu().contiguous() for k, v in state.items()}, "step": int(step)}, tmp)
