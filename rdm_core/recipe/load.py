"""Loading recipes: YAML -> ``extends:`` chain -> ``key=value`` overrides -> typed, struct-mode config.

* ``extends:`` names a parent: a path relative to the recipe, or the name of a shipped recipe or
  of a recipe a plugin ships (``rdm recipes`` lists both).
* A child's mappings merge into the parent's key by key; a mapping tagged ``!replace`` replaces
  the parent's mapping instead (``args: !replace {hidden: 4}`` keeps none of the parent's args).
* Every key remembers the file (or ``--set``) that set it, so errors about an inherited key say
  where it came from (:func:`recipe_origin`).

Every failure is a :class:`RecipeError` naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.errors import RecipeError, close_matches
from rdm_core.recipe.layers import forget, merge_into, read_yaml, remove, where_set
from rdm_core.recipe.objective import keys_of, objective_name, settings_schema
from rdm_core.recipe.schema import Recipe

RECIPE_SUFFIXES = (".yaml", ".yml")


def shipped_recipes_dir() -> Path:
    """The ``recipes/`` folder that ships beside ``rdm_core``."""
    return Path(__file__).resolve().parents[2] / "recipes"


def list_recipes() -> list[Path]:
    """The shipped recipe files."""
    d = shipped_recipes_dir()
    return sorted(p for p in d.rglob("*") if p.suffix in RECIPE_SUFFIXES) if d.is_dir() else []


def shipped_recipe_name(path: Path) -> str:
    return str(path.relative_to(shipped_recipes_dir()).with_suffix(""))


def recipe_file(factory: Any) -> Path:
    """The file a ``recipes`` registration points at.

    A plugin registers a path, or ``"package:relative/file.yaml"`` for a file inside an installed
    package (found without importing the package).

    Raises:
        RecipeError: the package or the file does not exist.
    """
    text = str(factory)
    package, sep, relative = text.partition(":")
    if not sep or "/" in package or "\\" in package or Path(text).is_file():
        return Path(text)
    from rdm_core.source_names import MissingModule, Unknown, module_source

    try:
        source = module_source(package)
    except (MissingModule, Unknown):
        source = None
    if source is None:
        raise RecipeError(f"recipe {text!r}: package {package!r} not found.", "install the plugin that ships it")
    return source.parent / relative


def _registered_recipes() -> dict[str, Any]:
    from rdm_core.plugins import registry

    return {e.name: e for e in registry("recipes").entries()}


def find_recipe(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe path: an existing file, else a recipe by name.

    Args:
        name_or_path: a path, or a name among the shipped recipes, then the recipes plugins ship.
        relative_to: resolve relative paths against this directory (``extends:``) instead of the
            working directory.
    """
    p = Path(name_or_path)
    if relative_to is not None:
        if (relative_to / p).is_file():  # an absolute p stays p
            return (relative_to / p).resolve()
    elif p.is_file():
        return p
    shipped = shipped_recipes_dir()
    for suffix in ("", *RECIPE_SUFFIXES):
        candidate = shipped / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    registered = _registered_recipes()
    if str(name_or_path) in registered:
        path = recipe_file(registered[str(name_or_path)].factory)
        if not path.is_file():
            entry = registered[str(name_or_path)]
            raise RecipeError(
                f"recipe {str(name_or_path)!r} of plugin {entry.plugin!r} points at {path}, which does not exist.",
                "reinstall the plugin, or report the broken registration to its authors",
            )
        return path
    names = list(registered)
    guess = close_matches(p.stem, names)
    did = f" Did you mean {guess[0]!r}?" if guess else ""
    raise RecipeError(
        f"recipe {str(name_or_path)!r} not found.{did}",
        f"pass a YAML path or one of: {', '.join(names) or '(none shipped)'} (`rdm recipes` lists them)",
    )


def _chain(
    path: Path, seen: tuple[Path, ...] = (), roots: list[Path] | None = None
) -> list[tuple[Path, dict[str, Any], list[str]]]:
    """[(path, data, replaced paths)] from the root ancestor down to ``path``.

    ``roots`` are the trees a relative ``extends:`` may reach (:mod:`rdm_core.recipe.confine`);
    the top call starts from the recipe's own directory and the shipped recipes.
    """
    from rdm_core.recipe.confine import allowed_roots, check_extends

    roots = allowed_roots(path) if roots is None else roots
    path = path.resolve()
    if path in seen:
        raise RecipeError(
            f"{path}: `extends:` forms a cycle ({' -> '.join(str(s) for s in seen)}).", "remove one `extends:`"
        )
    data, replaced = read_yaml(path)
    parent = data.get("extends")
    if parent is None:
        return [(path, data, replaced)]
    try:
        parent_path = find_recipe(str(parent), relative_to=path.parent)
    except RecipeError as exc:
        raise RecipeError(f"{path}: `extends: {parent}`: {exc.problem}", exc.fix) from None
    if (path.parent / str(parent)).is_file():  # a path (relative or absolute): confined
        roots = check_extends(path, str(parent), parent_path, roots)
    else:  # a recipe named by name (shipped or a plugin's): its own directory is its tree
        roots = [*roots, parent_path.resolve().parent]
    return [*_chain(parent_path.resolve(), (*seen, path), roots), (path, data, replaced)]


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


def _explain(
    exc: Exception,
    where: str,
    origin: dict[str, str] | None = None,
    *,
    prefix: str = "",
    objective_schema: type | None = None,
) -> RecipeError:
    """Turn an OmegaConf error into one line naming the file, the key and the valid ones.

    ``prefix`` is prepended to the error's key (``objective`` when the objective's own section
    was being typed, since OmegaConf then reports keys relative to it).
    """
    from omegaconf.errors import OmegaConfBaseException

    full_key = str((exc.full_key if isinstance(exc, OmegaConfBaseException) else None) or "")
    if prefix:
        full_key = f"{prefix}.{full_key}" if full_key else prefix
    where = where_set(origin, full_key, where)
    message = " ".join(str(exc).splitlines()[0].split()) if str(exc) else type(exc).__name__
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


def _objective_starts_afresh(combined: dict[str, Any], layer: dict[str, Any], origin: dict[str, str]) -> None:
    """A layer that names another objective drops the parent's objective settings (they belong
    to the parent's objective)."""
    section = layer.get("objective")
    if isinstance(section, dict) and "name" in section and section["name"] != objective_name(combined.get("objective")):
        combined.pop("objective", None)
        forget(origin, "objective")


def _type_objective(merged: Any, where: str, origin: dict[str, str] | None = None) -> Any:
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
        raise _explain(exc, where, origin, prefix="objective", objective_schema=schema) from None
    return merged


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Any:
    """Load a recipe (file or recipe name), follow ``extends:``, apply ``key=value`` overrides.

    Also selects the component replacements the recipe asks for (``plugins.replace``) in the
    process-wide plugin host.

    Returns:
        A struct-mode ``DictConfig`` typed by :class:`Recipe` (attribute access:
        ``recipe.train.lr``). Use :func:`recipe_path` for its file and :func:`recipe_origin`
        for where a key was set.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = find_recipe(name_or_path)
    combined: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for layer_path, data, replaced in _chain(path):
        for dotted in replaced:
            remove(combined, dotted)
            forget(origin, dotted)
        _objective_starts_afresh(combined, data, origin)
        merge_into(combined, {k: v for k, v in data.items() if k != "extends"}, origin, str(layer_path), "")
    merged = OmegaConf.structured(Recipe)
    OmegaConf.set_struct(merged, True)
    try:
        _open_free_mappings(merged)
        merged = OmegaConf.merge(merged, combined)
    except OmegaConfBaseException as exc:
        raise _explain(exc, str(path), origin) from None
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise RecipeError(f"override {bad[0]!r} is not key=value.", "write overrides like train.lr=1e-4")
        for item in overrides:
            key, _, text = item.partition("=")
            try:
                value = _override_value(item, text)
                if key.strip() == "objective.name" and value != objective_name(merged.objective):
                    merged.objective = {}  # another objective: the old settings were not its own
                    forget(origin, "objective")
                _open_free_mappings(merged)
                OmegaConf.update(merged, key.strip(), value, merge=True)
            except (OmegaConfBaseException, TypeError, ValueError) as exc:
                raise _explain(exc, f"override {item!r}") from None
            forget(origin, key.strip())
            origin[key.strip()] = f"--set {item}"
    merged.extends = None  # resolved: the merged recipe stands alone
    merged = _type_objective(merged, f"{path} with --set overrides" if overrides else str(path), origin)
    try:
        OmegaConf.to_container(merged, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise _explain(exc, str(path), origin) from None
    _RECIPE_PATHS[id(merged)] = (path, origin)
    from rdm_core.plugins import use_recipe_replacements

    use_recipe_replacements(OmegaConf.to_container(merged.plugins.replace))
    return merged


_RECIPE_PATHS: dict[int, tuple[Path, dict[str, str]]] = {}


def _override_value(item: str, text: str) -> Any:
    """The YAML value of ``--set KEY=TEXT`` (one line naming the override when it is not YAML)."""
    import yaml
    from omegaconf import OmegaConf

    try:
        return OmegaConf.from_dotlist([f"value={text}"])["value"]
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RecipeError(
            f"--set {item}: the value is not valid YAML ({problem}).",
            "quote it, or close its brackets: e.g. --set train.betas=[0.9,0.95] or --set run.name='a:b'",
        ) from None


def recipe_path(recipe: Any) -> Path | None:
    """The file a loaded recipe came from (``None`` for recipes built in code)."""
    found = _RECIPE_PATHS.get(id(recipe))
    return found[0] if found else None


def recipe_origin(recipe: Any, dotted: str) -> str | None:
    """Where ``dotted`` (or its closest parent key) was set: a file path or ``--set k=v``.

    ``None`` for recipes built in code or keys left at their schema default.
    """
    found = _RECIPE_PATHS.get(id(recipe))
    if not found:
        return None
    return where_set(found[1], dotted, "") or None


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
        _open_free_mappings(merged)
        merged = OmegaConf.merge(merged, OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise _explain(exc, "<dict>") from exc
    return _type_objective(merged, "<dict>")
