"""``prompts``: an ordered prompt list from a text file (one per line), JSON list or JSONL."""

from __future__ import annotations

from typing import Any

from rdm_core.errors import RecipeError
from rdm_core.prompts import read_prompts


class PromptFile:
    """A :class:`~rdm_core.interfaces.PromptSource` over a prompt file.

    Args:
        path: ``.txt`` / ``.json`` / ``.jsonl`` file.
        key: field of JSON rows holding the prompt (default: prompt, caption or text).
        repeat: tile the list this many times (e.g. GenEval prompts x 32 in a generator pool).
    """

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the prompt file exists."""
        from rdm_core.recipe.validate import require_file

        require_file(args.get("path"), f"{where} path", "point `path` at a .txt, .json or .jsonl prompt file")

    def __init__(self, path: str, key: str | None = None, repeat: int = 1) -> None:
        if repeat < 1:
            raise RecipeError(f"prompts repeat must be >= 1, got {repeat}.", "use repeat: 1 or more")
        self.path = path
        self._prompts = read_prompts(self.path, key) * int(repeat)

    def prompts(self) -> list[str]:
        return list(self._prompts)

    def __len__(self) -> int:
        return len(self._prompts)
