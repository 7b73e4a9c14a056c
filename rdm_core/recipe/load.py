"""Loading recipes: YAML -> ``extends:`` chain -> ``key=value`` overrides -> typed, struct-mode config.

Every failure is a :class:`RecipeError` naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError, close_matches
from rdm_core.recipe.objective import keys_of, objective_name, settings_schema
from rdm_core.recipe.schema import Recipe

RECIPE_SUFFIXES = (".yaml", ".yml")


def shipped_recipes_dir() -> Path:
    """The ``recipes/`` folder that ships beside ``rdm_core``."""
    return Path(__file__).resolve().parents[2] / "recipes"


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe path: an existing file, else a shipped recipe by name (``digits-cpu``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = shipped_recipes_dir()
    for suffix in ("", *RECIPE_SUFFIXES):
        candidate = shipped / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    names = [r.stem for r in list_recipes()]
    guess = close_matches(p.stem, names)
    did = f" Did you mean {guess[0]!r}?" if guess else ""
    raise RecipeError(
        f"recipe {str(name_or_path)!r} not found.{did}",
        f"pass a YAML path or one of: {', '.join(names) or '(none shipped)'}",
    )


def list_recipes() -> list[Path]:
    d = shipped_recipes_dir()
    return sorted(p for p in d.rglob("*") if p.suffix in RECIPE_SUFFIXES) if d.is_dir() else []


def _read_yaml(path: Path) -> Any:
    from omegaconf import DictConfig, OmegaConf

    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError and friends
        raise RecipeError(f"{path}: not valid YAML ({exc}).", "fix the YAML syntax") from exc
    if not isinstance(cfg, DictConfig):  # a list or a scalar at the top level
        raise RecipeError(
            f"{path}: a recipe must be a mapping of sections.", "start the file with sections such as `run:`"
        )
    return cfg


def _chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, Any]]:
    """[(path, raw yaml)] from the root ancestor down to ``path``."""
    path = path.resolve()
    if path in seen:
        raise RecipeError(
            f"{path}: `extends:` forms a cycle ({' -> '.join(str(s) for s in seen)}).", "remove one `extends:`"
        )
    raw = _read_yaml(path)
    parent = raw.get("extends") if "extends" in raw else None
    if parent is None:
        return [(path, raw)]
    parent_path = (path.parent / str(parent)).resolve()
    if not parent_path.is_file():
        raise RecipeError(
            f"{path}: `extends: {parent}` does not exist ({parent_path}).", "give a path relative to this recipe"
        )
    return [*_chain(parent_path, (*seen, path)), (path, raw)]


def _open_free_mappings(cfg: Any) -> None:
    """Let ``args``-style ``Dict[str, Any]`` nodes accept any key; dataclass sections stay strict."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        if cfg._metadata.object_type in (dict, None):
            OmegaConf.set_struct(cfg, False)
        for key in cfg.keys():
            node = cfg._get_node(key)
            if isinstance(node, (DictConfig, ListConfig)):
                _open_free_mappings(node)
    elif isinstance(cfg, ListConfig):
        for i in range(len(cfg)):
            node = cfg._get_node(i)
            if isinstance(node, (DictConfig, ListConfig)):
                _open_free_mappings(node)


def _valid_keys(full_key: str, objective_schema: type | None) -> tuple[str, list[str]]:
    """``(section, keys valid there)`` for the dotted key an error points at."""
    parts = full_key.split(".") if full_key else []
    parent = [p for p in parts[:-1] if not p.isdigit()]
    if parent[:1] == ["objective"]:
        keys = keys_of(objective_schema, parent[1:]) if objective_schema is not None else []
    else:
        keys = keys_of(Recipe, parent)
    return ".".join(parent), keys


def _explain(exc: Exception, where: str, *, prefix: str = "", objective_schema: type | None = None) -> RecipeError:
    """Turn an OmegaConf error into one line naming the key and the valid ones.

    ``prefix`` is prepended to the error's key (``objective`` when the objective's own section
    was being typed, since OmegaConf then reports keys relative to it).
    """
    from omegaconf.errors import OmegaConfBaseException

    full_key = (exc.full_key if isinstance(exc, OmegaConfBaseException) else None) or ""
    if prefix:
        full_key = f"{prefix}.{full_key}" if full_key else prefix
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    name = type(exc).__name__
    if name in ("ConfigKeyError", "ConfigAttributeError") or "not in" in message:
        key = full_key.split(".")[-1] if full_key else message
        section, valid = _valid_keys(full_key, objective_schema)
        guess = close_matches(key, valid)
        did = f" Did you mean {guess[0]!r}?" if guess else ""
        scope = f"section {section!r}" if section else "the top level"
        return RecipeError(
            f"{where}: unknown key {full_key or key!r} in {scope}.{did}", f"valid keys: {', '.join(valid)}"
        )
    if name == "ValidationError" or "could not be converted" in message:
        return RecipeError(
            f"{where}: bad value for {full_key!r}: {message}.",
            "give a value of the type the schema declares (see docs/recipes.md)",
        )
    if name == "MissingMandatoryValue":
        return RecipeError(f"{where}: {full_key!r} is required but not set.", f"set `{full_key}` in the recipe")
    return RecipeError(f"{where}: {message}", "see docs/recipes.md")


def _merge_layer(merged: Any, layer: Any) -> Any:
    """Merge one YAML layer; a layer that names another objective starts its settings afresh
    (the parent's settings belong to the parent's objective)."""
    from omegaconf import OmegaConf

    section = layer.get("objective") if "objective" in layer else None
    if section is not None and "name" in section and section["name"] != objective_name(merged.objective):
        merged.objective = {}
    _open_free_mappings(merged)
    return OmegaConf.merge(merged, layer)


def _type_objective(merged: Any, where: str) -> Any:
    """Merge the free-form ``objective`` section into the schema its objective declares."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = settings_schema(objective_name(merged.objective))
    if schema is None:  # not registered: `rdm validate` / `rdm train` name the missing plugin
        return merged
    typed = OmegaConf.structured(schema)
    OmegaConf.set_struct(typed, True)
    _open_free_mappings(typed)
    try:
        merged.objective = OmegaConf.merge(typed, OmegaConf.to_container(merged.objective, resolve=False))
    except OmegaConfBaseException as exc:
        raise _explain(exc, where, prefix="objective", objective_schema=schema) from exc
    return merged


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Any:
    """Load a recipe (file or shipped name), follow ``extends:``, apply ``key=value`` overrides.

    Returns:
        A struct-mode ``DictConfig`` typed by :class:`Recipe` (attribute access:
        ``recipe.train.lr``). ``recipe._path`` is not stored; use :func:`recipe_path`.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = find_recipe(name_or_path)
    merged = OmegaConf.structured(Recipe)
    OmegaConf.set_struct(merged, True)
    for layer_path, raw in _chain(path):
        try:
            merged = _merge_layer(merged, raw)
        except OmegaConfBaseException as exc:
            raise _explain(exc, str(layer_path)) from exc
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise RecipeError(f"override {bad[0]!r} is not key=value.", "write overrides like train.lr=1e-4")
        for item in overrides:
            key, _, text = item.partition("=")
            try:
                value = OmegaConf.from_dotlist([f"value={text}"])["value"]
                if key.strip() == "objective.name" and value != objective_name(merged.objective):
                    merged.objective = {}  # another objective: the old settings were not its own
                _open_free_mappings(merged)
                OmegaConf.update(merged, key.strip(), value, merge=True)
            except (OmegaConfBaseException, TypeError, ValueError) as exc:
                raise _explain(exc, f"override {item!r}") from exc
    merged.extends = None  # resolved: the merged recipe stands alone
    merged = _type_objective(merged, f"{path} with --set overrides" if overrides else str(path))
    try:
        OmegaConf.to_container(merged, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise _explain(exc, str(path)) from exc
    _RECIPE_PATHS[id(merged)] = path
    return merged


_RECIPE_PATHS: dict[int, Path] = {}


def recipe_path(recipe: Any) -> Path | None:
    """The file a loaded recipe came from (``None`` for recipes built in code)."""
    return _RECIPE_PATHS.get(id(recipe))


def to_yaml(recipe: Any) -> str:
    """The resolved recipe as YAML (written into every run directory); values read from the
    environment stay ``${oc.env:...}`` text (see :mod:`rdm_core.recipe.persist`)."""
    from rdm_core.recipe.persist import persisted_yaml

    return persisted_yaml(recipe)


def recipe_from_dict(data: dict[str, Any]) -> Any:
    """A struct-mode recipe from a plain dict (tests and programmatic use)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = OmegaConf.structured(Recipe)
    OmegaConf.set_struct(merged, True)
    try:
        merged = _merge_layer(merged, OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise _explain(exc, "<dict>") from exc
    return _type_objective(merged, "<dict>")
