"""Where an encoder's weights come from: explicit local path -> Hugging Face cache -> download.

Thin layer over :mod:`rdm_core.weights` that knows each library's file layout. Every offline miss
is one :class:`~rdm_core.errors.WeightsNotFoundError` naming the hub id, the file and
``rdm encoders fetch NAME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.errors import WeightsNotFoundError
from rdm_core.weights import hub_file, local_file, url_file

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import EncoderSpec


def fetch_command(spec: EncoderSpec) -> str:
    return f"rdm encoders fetch {spec.name}"


def weight_file(spec: EncoderSpec, weights: str | None, filename: str | None = None) -> Path:
    """One weights file: ``weights`` if given (a file, or a directory holding ``filename``),
    else the declared hub file / URL from the cache (downloaded only when online)."""
    target = filename or (spec.weights.files[0] if spec.weights.files else "model.safetensors")
    if weights is not None:
        p = local_file(weights, spec.name)
        if p.is_dir():
            inner = p / target
            if not inner.exists():
                raise WeightsNotFoundError(
                    f"{p} is a directory without {target} (weights for {spec.name}).",
                    f"point the recipe at the weights file itself, or put {target} in {p}",
                )
            return inner
        return p
    if spec.weights.hub_id:
        return hub_file(
            spec.weights.hub_id,
            target,
            revision=spec.weights.revision,
            subfolder=spec.weights.subfolder,
            fetch_command=fetch_command(spec),
        )
    if spec.weights.url:
        return url_file(spec.weights.url, fetch_command=fetch_command(spec))
    raise WeightsNotFoundError(f"encoder {spec.name!r} has no weights source.", "pass weights=<local file>")


def pretrained_dir(spec: EncoderSpec, weights: str | None) -> Path:
    """A directory for ``from_pretrained``: ``weights`` itself, or the cache snapshot holding every
    declared file (each fetched through :func:`weight_file`, so a miss names the exact file)."""
    if weights is not None:
        p = local_file(weights, spec.name)
        if not p.is_dir():
            raise WeightsNotFoundError(
                f"weights for {spec.name} must be a directory written by save_pretrained, got the file {p}.",
                "point the recipe at the directory that holds config.json and the weights",
            )
        return p
    paths = [weight_file(spec, None, f) for f in spec.weights.files]
    return paths[0].parent


def _is_safetensors(p: Path) -> bool:
    """Sniff the format: an 8-byte header length followed by a JSON object."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``: never unpickles code)."""
    import torch

    p = Path(path)
    if p.suffix == ".safetensors" or _is_safetensors(p):
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        obj: Any = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsNotFoundError(
            f"{p} is not a readable weights file ({type(exc).__name__}: {exc}).",
            "re-download it, or convert it to .safetensors",
        ) from exc
    for key in ("state_dict", "model", "module"):  # common checkpoint wrappers
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsNotFoundError(
            f"{p} does not hold a state dict (found {type(obj).__name__}).", "give a file saved from model.state_dict()"
        )
    return obj
