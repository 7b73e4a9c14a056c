"""Locating and loading diffusers pipeline components: a local folder, else the Hugging Face cache/hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rdm_core.errors import WeightsNotFoundError
from rdm_core.weights import is_offline

PIPELINE_PATTERNS = ("model_index.json", "transformer/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*")


def resolve_model_dir(
    model_dir: str | None, hub_id: str, revision: str | None = None, patterns: tuple[str, ...] = PIPELINE_PATTERNS
) -> Path:
    """A local pipeline folder (``transformer/``, ``vae/``, ...): ``model_dir`` if given, else a hub snapshot.

    Offline (``HF_HUB_OFFLINE=1``), a snapshot missing from the cache is a
    :class:`WeightsNotFoundError` naming the hub id and the command that downloads it.
    """
    if model_dir:
        p = Path(model_dir).expanduser()
        if not p.is_dir():
            raise WeightsNotFoundError(
                f"generator model_dir {p} does not exist.",
                f"point generator.args.model_dir at a local {hub_id} folder, or remove it to use the hub cache",
            )
        return p
    from huggingface_hub import snapshot_download

    fetch = f"hf download {hub_id}"
    try:
        return Path(snapshot_download(hub_id, revision=revision, allow_patterns=list(patterns), local_files_only=True))
    except Exception:
        if is_offline():
            raise WeightsNotFoundError(
                f"{hub_id} is not in the Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1).",
                f"run `{fetch}` on a machine with internet access (same HF_HOME), "
                "or set generator.args.model_dir to a local folder",
            ) from None
    try:
        return Path(snapshot_download(hub_id, revision=revision, allow_patterns=list(patterns)))
    except Exception as exc:
        raise WeightsNotFoundError(
            f"could not download {hub_id}: {type(exc).__name__}: {exc}.",
            f"check the network and access rights (`hf auth login` for gated repos), then `{fetch}`",
        ) from exc


def require_subfolder(root: Path, sub: str) -> Path:
    """``root / sub``, which must exist (one folder per pipeline component)."""
    if not (root / sub).is_dir():
        raise WeightsNotFoundError(
            f"{root} has no {sub}/ folder.",
            "model_dir must use the diffusers pipeline layout (transformer/, vae/, text_encoder/, tokenizer/)",
        )
    return root / sub


def load_component(cls: Any, root: Path, sub: str, dtype: torch.dtype) -> Any:
    """``cls.from_pretrained(root, subfolder=sub)`` offline, in ``dtype``."""
    require_subfolder(root, sub)
    return cls.from_pretrained(str(root), subfolder=sub, torch_dtype=dtype, local_files_only=True)


def parse_dtype(name: str) -> torch.dtype:
    """``fp32``/``bf16``/``fp16``/``fp64`` (or the torch spelling) -> the torch dtype."""
    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp64": torch.float64,
    }
    if name not in table:
        from rdm_core.errors import RdmError

        raise RdmError(f"unknown dtype {name!r}.", f"use one of: {', '.join(table)}")
    return table[name]
