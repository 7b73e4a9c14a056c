"""What of a recipe may be written to disk: environment values never are.

A recipe may read values from the environment (``${oc.env:HF_TOKEN}``). Commands use the
resolved value, but every copy of the recipe that rdm persists (``recipe.yaml`` in a run
directory, checkpoint headers, the reference manifest, evaluation and run reports) records the
interpolation text instead, so a token or a private path never lands in a file or a directory
name. Other interpolations (``${run.name}``) are resolved as usual; a value that depends on an
environment variable, directly or through another key, keeps its text.
"""

from __future__ import annotations

import re
from typing import Any

from rdm_core.errors import RecipeError

_ENV = re.compile(r"oc\.env\s*:")
_OPEN = re.compile(r"(?<!\\)\$\{")


def _escape_env(node: Any) -> Any:
    """Raw recipe data in which every string reading the environment is made literal."""
    if isinstance(node, dict):
        return {k: _escape_env(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape_env(v) for v in node]
    if isinstance(node, str) and _ENV.search(node):
        return _OPEN.sub(r"\\${", node)  # `\${` is OmegaConf's escape for a literal `${`
    return node


def persisted(node: Any) -> Any:
    """A recipe (or any node of one) as plain data fit for a file: env interpolations kept as text.

    Args:
        node: a loaded recipe, one of its sections, or a plain value (returned as is).

    Returns:
        Plain dicts/lists/scalars; interpolations resolved except those reading the environment.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if not isinstance(node, (DictConfig, ListConfig)):
        return node
    root = node._get_root()
    raw = OmegaConf.to_container(root, resolve=False)
    safe = OmegaConf.create(_escape_env(raw))
    key = node._get_full_key(None) if node is not root else ""
    sub = OmegaConf.select(safe, str(key)) if key else safe
    if not isinstance(sub, (DictConfig, ListConfig)):
        return sub
    return OmegaConf.to_container(sub, resolve=True)


def persisted_value(recipe: Any, key: str) -> Any:
    """One dotted key of ``recipe`` as it may be written to disk (e.g. ``"references.dir"``)."""
    data = persisted(recipe)
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def persisted_yaml(recipe: Any) -> str:
    """The recipe as YAML for ``recipe.yaml``: resolved, except values read from the environment."""
    import yaml

    return yaml.safe_dump(persisted(recipe), sort_keys=False, allow_unicode=True)


def reads_environment(recipe: Any, key: str) -> bool:
    """True when the value at ``key`` comes (directly or through other keys) from the environment."""
    from omegaconf import OmegaConf

    return persisted_value(recipe, key) != OmegaConf.select(recipe, key)


def check_run_name(recipe: Any) -> None:
    """Refuse a ``run.name`` built from environment values: it becomes a directory name and is
    written into checkpoints and reports, where the value would be persisted.

    Raises:
        RecipeError: naming the key and the fix.
    """
    if reads_environment(recipe, "run.name"):
        raise RecipeError(
            "run.name reads an environment variable (${oc.env:...}); the name becomes a directory and "
            "is written into checkpoints and reports, so the value would be stored on disk.",
            "spell run.name out in the recipe or with --set run.name=NAME",
        )
