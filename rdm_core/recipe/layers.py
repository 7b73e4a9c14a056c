"""Recipe layers: one YAML file read with the ``!replace`` tag, and layers merged with provenance.

* A mapping tagged ``!replace`` replaces the parent's mapping instead of merging into it
  (``args: !replace {hidden: 4}`` keeps none of the parent's args); :func:`read_yaml` returns the
  dotted paths so tagged.
* :func:`merge_into` merges a child layer into the combined recipe key by key and remembers, for
  every dotted key, the file (or ``--set``) that set it; :func:`where_set` answers from that record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError

REPLACE_TAG = "!replace"


# -- reading YAML with the !replace tag ---------------------------------------------------------


class _Replace(dict):
    """A mapping tagged ``!replace`` (replaced, not merged, into the parent's)."""


def _yaml_loader() -> Any:
    """OmegaConf's YAML loader (``1e-4`` is a float, duplicate keys fail) plus ``!replace``."""
    try:
        from omegaconf._yaml import get_yaml_loader  # omegaconf >= 2.4
    except ImportError:  # pragma: no cover - omegaconf 2.3
        from omegaconf._utils import get_yaml_loader

    base = get_yaml_loader()

    class RecipeLoader(base):  # type: ignore[misc, valid-type]
        pass

    def construct_replace(loader: Any, node: Any) -> Any:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"{REPLACE_TAG} applies to a mapping ({REPLACE_TAG} {{...}})", node.start_mark
            )
        return _Replace(loader.construct_mapping(node, deep=True))

    RecipeLoader.add_constructor(REPLACE_TAG, construct_replace)
    return RecipeLoader


def _untag(data: Any, prefix: str, replaced: list[str]) -> Any:
    """Plain containers, with the dotted paths of ``!replace`` mappings collected."""
    if isinstance(data, dict):
        if isinstance(data, _Replace):
            replaced.append(prefix)
        return {k: _untag(v, f"{prefix}.{k}" if prefix else str(k), replaced) for k, v in data.items()}
    if isinstance(data, list):
        return [_untag(v, f"{prefix}.{i}", replaced) for i, v in enumerate(data)]
    return data


def yaml_problem(exc: Exception) -> str:
    """Where and what, never the text around it: a parent recipe may be any file on the machine
    (an absolute ``extends:``), and an error must not echo its contents."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return where + (exc.problem or "syntax error")
    return type(exc).__name__


def read_yaml(path: Path) -> tuple[dict[str, Any], list[str]]:
    """``(data, dotted paths tagged !replace)`` of one recipe file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({yaml_problem(exc)}).", "fix the YAML syntax") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot be read ({exc.strerror}).", "check the path and permissions") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"{path}: a recipe must be a mapping of sections.", "start the file with sections such as `run:`"
        )
    replaced: list[str] = []
    plain_data = _untag(data, "", replaced)
    if "" in replaced:
        raise RecipeError(f"{path}: {REPLACE_TAG} cannot tag the whole recipe.", "tag a section or a mapping in it")
    return plain_data, replaced


# -- merging with provenance --------------------------------------------------------------------


def forget(origin: dict[str, str], dotted: str) -> None:
    for key in [k for k in origin if k == dotted or k.startswith(dotted + ".")]:
        del origin[key]


def remove(tree: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = tree
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)


def merge_into(base: dict[str, Any], layer: dict[str, Any], origin: dict[str, str], source: str, prefix: str) -> None:
    """Merge ``layer`` into ``base`` (mappings key by key, anything else replaced)."""
    for key, value in layer.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value, origin, source, dotted)
            if not value:
                origin.setdefault(dotted, source)
            continue
        forget(origin, dotted)
        base[key] = _copy(value)
        _record(origin, value, source, dotted)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _record(origin: dict[str, str], value: Any, source: str, dotted: str) -> None:
    origin[dotted] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _record(origin, v, source, f"{dotted}.{k}")


def where_set(origin: dict[str, str] | None, full_key: str, fallback: str) -> str:
    """The file (or ``--set``) that set ``full_key`` or its closest parent."""
    if origin:
        parts = full_key.split(".") if full_key else []
        for n in range(len(parts), 0, -1):
            found = origin.get(".".join(parts[:n]))
            if found is not None:
                return found
    return fallback
