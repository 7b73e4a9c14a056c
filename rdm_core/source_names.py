"""What the top-level names of a module are bound to, read from its source without importing it.

The module's file is found the way ``import`` would find it (parent packages through their spec's
search locations), parsed once per modification time, and its top-level bindings are followed
through imports and aliases. Anything that cannot be decided from the syntax alone (names bound
conditionally, dynamic modules, long chains) raises :class:`Unknown`, and callers import instead.
:mod:`rdm_core.factory_source` reads factory signatures on top of this.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MAX_DEPTH = 12  # alias/import/base chains longer than this are treated as unknown


class Unknown(Exception):
    """The answer cannot be read from source; import the factory instead."""


class MissingModule(Exception):
    """The factory's module does not exist on ``sys.path``."""


class MissingAttribute(Exception):
    """The module exists, is readable, and certainly binds no such name."""


@dataclass(frozen=True)
class SourceRef:
    """Something a name is bound to: a syntax node in a module, or a whole module."""

    module: str
    node: ast.AST | None  # None: the module itself


# -- finding and parsing modules without importing them -----------------------------------------


def module_source(name: str) -> Path | None:
    """The ``.py`` file of module ``name`` (``None``: it exists but is not Python source).

    Nothing is imported: parent packages are searched through their spec's search locations.

    Raises:
        MissingModule: no such module.
    """
    loaded = sys.modules.get(name)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        return Path(file) if file and file.endswith(".py") else None
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None:
                break
            full = ".".join(parts[: i + 1])
            parent = sys.modules.get(full)
            if parent is not None:
                spec = parent.__spec__
                continue
            locations = spec.submodule_search_locations
            if locations is None:  # the parent is a plain module, not a package
                spec = None
                break
            spec = importlib.machinery.PathFinder.find_spec(full, list(locations))
    except (ImportError, ValueError, AttributeError) as exc:
        raise Unknown(str(exc)) from None
    if spec is None:
        raise MissingModule(name)
    origin = spec.origin
    return Path(origin) if origin and origin.endswith(".py") else None


@dataclass(frozen=True)
class ModuleInfo:
    """What the source of one module says about its top-level names."""

    bindings: dict[str, ast.AST]  # name -> what its last top-level binding binds it to
    conditional: frozenset[str]  # bound inside top-level if/try/for/while/with, or by `global`
    dynamic: bool  # may create names at run time (module __getattr__, import *, globals())
    is_package: bool


@lru_cache(maxsize=256)
def _parse(path: Path, mtime: float) -> ModuleInfo:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    bindings: dict[str, ast.AST] = {}
    conditional: set[str] = set()
    dynamic = any(marker in text for marker in ("globals()", "vars()", "exec(", "setattr(sys.modules"))
    for top in tree.body:
        for name, value in bound_names(top):
            bindings[name] = value
        if isinstance(top, ast.ImportFrom) and any(a.name == "*" for a in top.names):
            dynamic = True
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) and top.name == "__getattr__":
            dynamic = True
        if isinstance(top, (ast.If, ast.Try, ast.For, ast.While, ast.With)):
            for node in ast.walk(top):
                if isinstance(node, ast.stmt) and node is not top:
                    conditional.update(n for n, _ in bound_names(node))
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    conditional.add(node.id)
    if re.search(r"^\s*global\s", text, flags=re.M):  # names a function may bind at module level
        conditional.update(n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names)
    return ModuleInfo(bindings, frozenset(conditional), dynamic, path.name == "__init__.py")


def module_info(module: str) -> ModuleInfo:
    path = module_source(module)
    if path is None:
        raise Unknown(f"{module} is not Python source")
    try:
        return _parse(path, path.stat().st_mtime)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise Unknown(str(exc)) from None


# -- name bindings ----------------------------------------------------------------------------


def bound_names(node: ast.stmt) -> list[tuple[str, ast.AST]]:
    """Names a statement binds, each with what it binds it to."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, node)]
    if isinstance(node, ast.Assign):
        bound: list[tuple[str, ast.AST]] = []
        for target in node.targets:
            if isinstance(target, ast.Name):
                bound.append((target.id, node.value))
            elif isinstance(target, (ast.Tuple, ast.List)):  # unpacking: bound, but to nothing readable
                for element in target.elts:
                    inner = element.value if isinstance(element, ast.Starred) else element
                    if isinstance(inner, ast.Name):
                        bound.append((inner.id, target))
        return bound
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return [(node.target.id, node.value)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [((a.asname or a.name).split(".")[0], node) for a in node.names if a.name != "*"]
    return []


def import_target(module: str, is_package: bool, stmt: ast.Import | ast.ImportFrom, bound: str) -> SourceRef:
    """What ``bound`` names after the import statement ``stmt`` in ``module``."""
    for alias in stmt.names:
        if (alias.asname or alias.name).split(".")[0] != bound:
            continue
        if isinstance(stmt, ast.Import):
            return SourceRef(alias.name if alias.asname else alias.name.split(".")[0], None)
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(stmt.level - 1):
            base = base.rpartition(".")[0]
        source = ".".join(p for p in (base if stmt.level else "", stmt.module or "") if p)
        return SourceRef(source, ast.Name(id=alias.name, ctx=ast.Load()))
    raise Unknown(f"{bound} is not bound by this import")


def binding(module: str, name: str) -> tuple[ast.AST, ModuleInfo]:
    """The raw top-level binding of ``name`` in ``module`` (imports not followed)."""
    info = module_info(module)
    if name in info.conditional:
        raise Unknown(f"{module}.{name} is bound conditionally")
    bound = info.bindings.get(name)
    if bound is None:
        if info.dynamic:
            raise Unknown(f"{module} may create names dynamically")
        if info.is_package and module_source_exists(f"{module}.{name}"):
            return ast.Import(names=[ast.alias(name=f"{module}.{name}", asname=name)]), info
        raise MissingAttribute(f"module {module!r} has no attribute {name!r}")
    return bound, info


def lookup(module: str, name: str, depth: int) -> SourceRef:
    """What top-level ``name`` of ``module`` is bound to, following imports and aliases."""
    if depth > MAX_DEPTH:
        raise Unknown("binding chain too long")
    bound, info = binding(module, name)
    if isinstance(bound, (ast.Import, ast.ImportFrom)):
        target = import_target(module, info.is_package, bound, name)
        if target.node is None:
            return target
        return lookup(target.module, target.node.id, depth + 1)  # type: ignore[attr-defined]
    return SourceRef(module, bound)


def module_source_exists(name: str) -> bool:
    """Whether module ``name`` exists as readable Python source (nothing imported)."""
    try:
        module_source(name)
    except (MissingModule, Unknown):
        return False
    return True


def follow(ref: SourceRef, depth: int) -> SourceRef:
    """Resolve aliases (``a = b``, ``a = mod.b``) until a definition, a call or a module."""
    node = ref.node
    if depth > MAX_DEPTH:
        raise Unknown("alias chain too long")
    if isinstance(node, ast.Name):
        return follow(lookup(ref.module, node.id, depth + 1), depth + 1)
    if isinstance(node, ast.Attribute):
        owner = follow(SourceRef(ref.module, node.value), depth + 1)
        return follow(member(owner, node.attr, depth + 1), depth + 1)
    return ref


def member(owner: SourceRef, attr: str, depth: int) -> SourceRef:
    """``owner.attr`` for a module or a class definition."""
    if owner.node is None:
        return lookup(owner.module, attr, depth + 1)
    if isinstance(owner.node, ast.ClassDef):
        for stmt in owner.node.body:
            for n, value in bound_names(stmt):
                if n == attr:
                    return SourceRef(owner.module, value)
        raise Unknown(f"{attr} is not defined in the body of class {owner.node.name}")
    raise Unknown(f"cannot take attribute {attr} of this object statically")
