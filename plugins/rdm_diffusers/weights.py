"""Reading transformer weights from any file a user may point a generator at.

A safetensors file, a diffusers model folder (``*.safetensors``, or ``transformer/*.safetensors``
inside a pipeline folder), or a torch ``.pth``/``.pt``/``.bin`` holding a state dict or
``{"model": state_dict}`` (the paper's released student), read by
:func:`rdm_core.safe_read.read_torch_file` (``torch.load(weights_only=True)``, plain data only) so
no code in the file runs. Key names are left as they are: converting another layout is the
generator's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rdm_core.errors import ArtifactError, WeightsNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a weights file or diffusers folder, by name.

    Raises:
        WeightsNotFoundError: nothing at ``path``, or a folder without safetensors files.
        ArtifactError: a torch file that is not weights-only readable or holds no state dict.
    """
    import torch

    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsNotFoundError(
            f"generator weights not found at {p}.", "fix generator.weights / --checkpoint, or download the file first"
        )
    if p.is_dir():
        for sub in (p / "transformer", p):
            files = sorted(sub.glob("*.safetensors")) if sub.is_dir() else []
            if files:
                state: dict[str, Tensor] = {}
                for f in files:
                    state.update(read_state_dict(f))
                return state
        raise WeightsNotFoundError(
            f"{p} holds no .safetensors weights (nor transformer/*.safetensors).",
            "pass a weights file or a diffusers transformer folder",
        )
    if p.suffix in (".pth", ".pt", ".bin"):
        from rdm_core.safe_read import read_torch_file

        obj = read_torch_file(p)  # weights-only, plain data (tensors, numbers, strings) or refused
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            obj = obj["model"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ArtifactError(
                f"{p} is not a state dict nor {{'model': state_dict}}.",
                "pass the authors' released checkpoint or a safetensors file",
            )
        return dict(obj)
    from rdm_core.artifacts import load_tensors

    tensors, _ = load_tensors(p)
    return tensors
