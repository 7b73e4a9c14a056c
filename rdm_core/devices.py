"""Device names in recipes and on the command line (``run.device``, ``--device``).

``auto`` means "CUDA when this machine has it, else CPU", resolved in one place so that
training, generation, reference building and evaluation agree on what it picks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rdm_core.errors import RecipeError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` for a device name.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or any other torch device string (or a
            ``torch.device``, returned as is).
        local_rank: under torchrun, this process's GPU: ``auto``/``cuda`` then mean ``cuda:local_rank``.

    Raises:
        RecipeError: CUDA is asked for explicitly but this machine has none (the run would
            otherwise fail later with a less clear message).
    """
    import torch

    if isinstance(name, torch.device):
        return name
    choice = str(name).strip().lower()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    elif choice.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError(f"device {name!r} was requested but no CUDA device is available.", "use auto or cpu")
    if choice == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(choice)
