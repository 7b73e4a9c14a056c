"""``prompts``: an ordered prompt list from a text file (one per line), JSON list or JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from rdm_core.errors import RecipeError

PROMPT_KEYS = ("prompt", "caption", "text")


def read_prompts(path: str | Path, key: str | None = None) -> list[str]:
    """Prompts from ``.txt`` (non-empty lines), ``.json`` (list) or ``.jsonl`` (rows).

    Args:
        path: the file.
        key: the field of JSON rows holding the text; ``None`` tries prompt, caption, text.

    Raises:
        RecipeError: missing file, unreadable row, or no prompts.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise RecipeError(f"prompt file {str(p)!r} does not exist.", "give a .txt, .json or .jsonl prompt file")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        prompts = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    elif suffix in (".jsonl", ".json"):
        if suffix == ".json":
            data = json.loads(p.read_text())
            rows = data if isinstance(data, list) else data.get("prompts", [])
        else:
            rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        prompts = [_text(row, key, p, i) for i, row in enumerate(rows)]
    else:
        raise RecipeError(f"prompt file {str(p)!r} has an unknown suffix {suffix!r}.", "use .txt, .json or .jsonl")
    if not prompts:
        raise RecipeError(f"prompt file {str(p)!r} contains no prompts.", "add prompts to it")
    return prompts


def _text(row: object, key: str | None, path: Path, i: int) -> str:
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        for k in ([key] if key else PROMPT_KEYS):
            if k in row:
                return str(row[k])
    wanted = key or " / ".join(PROMPT_KEYS)
    raise RecipeError(f"{path}: row {i} has no {wanted!r} field.", "give every row the prompt text, or set `key`")


class PromptFile:
    """A :class:`~rdm_core.interfaces.PromptSource` over a prompt file.

    Args:
        path: ``.txt`` / ``.json`` / ``.jsonl`` file.
        key: field of JSON rows holding the prompt (default: prompt, caption or text).
        repeat: tile the list this many times (e.g. GenEval prompts x 32 in a generator pool).
    """

    def __init__(self, path: str, key: str | None = None, repeat: int = 1) -> None:
        if repeat < 1:
            raise RecipeError(f"prompts repeat must be >= 1, got {repeat}.", "use repeat: 1 or more")
        self.path = Path(path).expanduser()
        self._prompts = read_prompts(self.path, key) * int(repeat)

    def prompts(self) -> list[str]:
        return list(self._prompts)

    def __len__(self) -> int:
        return len(self._prompts)
