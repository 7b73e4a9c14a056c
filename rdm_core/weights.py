"""Locating pretrained weights: an explicit local path, else the Hugging Face cache, else a
download when online. An offline miss is one clear error naming the hub id, the file and the
command that fetches it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rdm_core.errors import WeightsNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.interfaces import EncoderSpec


def is_offline() -> bool:
    """True when the Hugging Face stack must not touch the network."""
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "RDM_OFFLINE")
    )


def local_file(path: str | os.PathLike[str], what: str) -> Path:
    """An explicit local weights path; a clear error if it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsNotFoundError(
            f"weights for {what} not found at {p}.",
            "fix the path in the recipe, or remove it to use the Hugging Face cache",
        )
    return p


def hub_file(
    hub_id: str, filename: str, *, revision: str | None = None, subfolder: str | None = None, fetch_command: str
) -> Path:
    """A file of a hub repository from the cache, downloading it only when online.

    Args:
        fetch_command: the command that fetches it (named in the offline error).
    """
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub_id, filename, revision=revision, subfolder=subfolder, local_files_only=True))
    except Exception:
        if is_offline():
            where = f"{hub_id}/{subfolder + '/' if subfolder else ''}{filename}"
            raise WeightsNotFoundError(
                f"{where} is not in the Hugging Face cache ({cache_dir()}) and the hub is offline (HF_HUB_OFFLINE=1).",
                f"run `{fetch_command}` on a machine with internet access (same HF_HOME), or point the recipe at a local file",
            ) from None
    try:
        return Path(hf_hub_download(hub_id, filename, revision=revision, subfolder=subfolder))
    except Exception as exc:
        raise WeightsNotFoundError(
            f"could not download {hub_id}/{filename}: {type(exc).__name__}: {exc}.",
            f"check the network and access rights (gated repos need `huggingface-cli login`), then `{fetch_command}`",
        ) from exc


def url_file(url: str, *, fetch_command: str) -> Path:
    """A file from a plain URL, cached under ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub

    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if target.exists():
        return target
    if is_offline():
        raise WeightsNotFoundError(
            f"{target.name} is not in {target.parent} and downloads are disabled (offline).",
            f"run `{fetch_command}` on a machine with internet access, or give a local path",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(target))
    return target


def cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def fetch_encoder_weights(spec: EncoderSpec) -> list[Path]:
    """Download an encoder's declared weight files into the cache (``rdm encoders fetch``)."""
    src, cmd = spec.weights, f"rdm encoders fetch {spec.name}"
    paths: list[Path] = []
    if src.hub_id:
        files = src.files or ("model.safetensors",)
        paths += [
            hub_file(src.hub_id, f, revision=src.revision, subfolder=src.subfolder, fetch_command=cmd) for f in files
        ]
    if src.url:  # an encoder may need both (DreamSim: DINO from the hub + the release zip)
        paths.append(url_file(src.url, fetch_command=cmd))
    if paths:
        return paths
    raise WeightsNotFoundError(
        f"encoder {spec.name!r} declares no downloadable weights ({src.note or 'no source'}).",
        "see `rdm encoders info " + spec.name + "` for how to obtain them",
    )
