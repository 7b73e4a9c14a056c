"""Where ``extends:`` may reach: the recipe's own directory tree and the shipped recipes.

A recipe that inherits from ``../../somewhere/else.yaml`` silently takes numbers from a file its
reader never sees, and a recipe passed around could read any YAML file on the machine. So a
relative ``extends:`` must stay inside the directory tree of the recipe the command was given
(or inside the shipped recipes); anything else must be written as an absolute path, which says
"this file, knowingly". A file reached through an absolute path opens its own directory tree to
the parents it names. Paths are compared after resolving symbolic links.
"""

from __future__ import annotations

from pathlib import Path

from rdm_core.errors import RecipeError


def allowed_roots(recipe: Path) -> list[Path]:
    """The trees a recipe's relative ``extends:`` may reach: its directory and the shipped recipes."""
    from rdm_core.recipe.load import shipped_recipes_dir

    return [recipe.resolve().parent, shipped_recipes_dir().resolve()]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_extends(child: Path, written: str, parent: Path, roots: list[Path]) -> list[Path]:
    """Refuse a parent recipe outside ``roots`` unless ``written`` is an absolute path.

    Args:
        child: the recipe file that has the ``extends:``.
        written: the ``extends:`` value as written.
        parent: the file it resolves to.
        roots: the trees allowed so far (:func:`allowed_roots` of the top recipe).

    Returns:
        The roots for the parent's own ``extends:`` (an absolute path adds the parent's directory).

    Raises:
        RecipeError: the parent leaves every allowed tree (the message names only paths, never
            the file's contents).
    """
    resolved = parent.resolve()
    if Path(written).expanduser().is_absolute():
        return [*roots, resolved.parent]
    if any(_inside(resolved, root) for root in roots):
        return roots
    shown = " or ".join(str(r) for r in roots)
    raise RecipeError(
        f"{child}: `extends: {written}` leaves the recipe's directory tree and the shipped recipes "
        f"(it resolves to {resolved}, outside {shown}).",
        f"copy the parent recipe next to {child.name}, or write `extends: {resolved}` (an absolute path) "
        "to inherit from it knowingly",
    )
