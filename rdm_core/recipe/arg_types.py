"""Checking recipe argument values against the simple types a factory declares.

A factory parameter annotated ``int``, ``float``, ``bool`` or ``str`` (optionally ``| None`` /
``Optional[...]``) tells what a recipe may pass; ``hidden: abc`` for ``hidden: int`` is refused
by ``rdm validate`` and by every command that builds the component, in one line, instead of a
``TypeError`` deep inside the plugin. Anything more complex (containers, classes, unions of
several types) is left to the factory.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

_SIMPLE = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_OPTIONAL = re.compile(r"^(?:Optional\[\s*(\w+)\s*\]|(\w+)\s*\|\s*None|None\s*\|\s*(\w+))$")


def _parse(annotation: Any) -> tuple[str, bool] | None:
    """``(simple type name, accepts None)`` for a simple annotation, else ``None``."""
    if isinstance(annotation, type):
        annotation = annotation.__name__
    if not isinstance(annotation, str):
        return None
    text = annotation.strip().strip("'\"")
    if text in _SIMPLE:
        return text, False
    m = _OPTIONAL.match(text)
    if m:
        name = next(g for g in m.groups() if g)
        return (name, True) if name in _SIMPLE else None
    return None


def type_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (``None`` when it fits or cannot be judged)."""
    parsed = _parse(annotation)
    if parsed is None:
        return None
    name, optional = parsed
    if value is None:
        return None if optional else f"null is not a {name}"
    allowed = _SIMPLE[name]
    if isinstance(value, bool) and name != "bool":  # True is an int to Python, not to a recipe
        return f"{value!r} is not a {name}"
    if not isinstance(value, allowed):
        return f"{value!r} is not a{'n' if name == 'int' else ''} {name}"
    return None


def first_type_problem(params: Iterable[inspect.Parameter], args: dict[str, Any]) -> tuple[str, str] | None:
    """``(argument, why)`` for the first recipe argument whose value does not fit its parameter's
    simple annotation, or ``None``."""
    for param in params:
        if param.name in args:
            problem = type_problem(args[param.name], param.annotation)
            if problem:
                return param.name, problem
    return None
