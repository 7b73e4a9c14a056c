"""Reading prompt files, the one format every command accepts.

``.txt``: one prompt per non-empty line. ``.jsonl``: one JSON row per line, a string or an object
with a ``prompt``, ``caption`` or ``text`` field (or the field named by ``key``). ``.json``: a
list of such rows, or ``{"prompts": [...]}``.

A path spelled ``pkg:<package>/<file>`` names a file shipped inside an installed package (e.g.
``pkg:rdm_eval/assets/geneval_prompts.jsonl``, the official GenEval prompts), so recipes can
point at shipped prompt sets wherever rdm is installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rdm_core.artifacts import read_jsonl
from rdm_core.errors import ArtifactError

PROMPT_KEYS = ("prompt", "caption", "text")
PACKAGE_PREFIX = "pkg:"


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A filesystem path for ``path``; ``pkg:<package>/<file>`` resolves inside the installed package.

    Raises:
        ArtifactError: a ``pkg:`` path whose package is not installed.
    """
    text = os.fspath(path)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text).expanduser()
    package, _, rest = text[len(PACKAGE_PREFIX) :].partition("/")
    import importlib.util

    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            f"{text}: package {package!r} is not installed.", "write pkg:<installed package>/<file>, or a plain path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / rest


def read_prompts(path: str | os.PathLike[str], key: str | None = None) -> list[str]:
    """The prompts of a ``.txt``, ``.jsonl`` or ``.json`` file, in file order.

    Raises:
        ArtifactError: a missing file, an unknown suffix, a bad row (named ``file:line``), or no prompts.
    """
    p = resolve_path(path)
    if not p.is_file():
        raise ArtifactError(
            f"prompts file {p} does not exist.", "pass a .txt (one prompt per line), .jsonl or .json file"
        )
    suffix = p.suffix.lower()
    lines = p.read_text(encoding="utf-8").splitlines()
    if suffix == ".txt":
        prompts = [line.strip() for line in lines if line.strip()]
    elif suffix == ".jsonl":
        prompts = [_text(row, key, p, n) for n, row in read_jsonl(p, fix="write one JSON object per line")]
    elif suffix == ".json":
        data = _json("\n".join(lines), p, 1)
        rows = data.get("prompts", []) if isinstance(data, dict) else data
        prompts = [_text(row, key, p, n) for n, row in enumerate(rows, 1)]
    else:
        raise ArtifactError(f"prompts file {p} has an unknown suffix {suffix!r}.", "use .txt, .jsonl or .json")
    if not prompts:
        raise ArtifactError(f"prompts file {p} holds no prompts.", "add at least one prompt")
    return prompts


def _json(text: str, path: Path, lineno: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}:{lineno} is not valid JSON ({exc}).", "write one JSON object per line") from exc


def _text(row: Any, key: str | None, path: Path, lineno: int) -> str:
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        for k in [key] if key else PROMPT_KEYS:
            if isinstance(row.get(k), str):
                return row[k]
    wanted = key or ", ".join(PROMPT_KEYS)
    raise ArtifactError(f"{path}:{lineno} has no {wanted} text field.", 'write rows like {"prompt": "a red apple"}')
