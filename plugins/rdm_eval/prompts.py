"""Prompt files for evaluation: JSONL rows with a ``prompt`` (or ``caption``/``text``) field, or
plain text with one prompt per line. Eval prompts are always encoded themselves, never sliced
from a training prompt pool (SPEC 16.12)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rdm_core.errors import ArtifactError

PROMPT_FIELDS = ("prompt", "caption", "text")


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """The prompts of ``path`` in file order.

    Raises:
        ArtifactError: missing file, a JSONL row without a prompt field, or an empty file.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"prompt file {p} not found.", "pass a .jsonl (one {\"prompt\": ...} per line) or .txt file")
    prompts: list[str] = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArtifactError(f"{p}:{lineno} is not valid JSON ({exc}).", "fix the JSONL line") from exc
            key = next((k for k in PROMPT_FIELDS if isinstance(row, dict) and k in row), None)
            if key is None:
                raise ArtifactError(f"{p}:{lineno} has none of the fields {', '.join(PROMPT_FIELDS)}.",
                                    "give each JSONL row a 'prompt' field")
            prompts.append(str(row[key]))
        else:
            prompts.append(line.strip())
    if not prompts:
        raise ArtifactError(f"{p} holds no prompts.", "add prompts, one per line")
    return prompts
