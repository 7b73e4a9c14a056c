"""Reading a lazy factory's call parameters from its source file, without importing it.

``rdm validate`` binds every recipe ``args`` mapping to the factory's signature. Importing a
factory's module to get that signature would import what the module imports (torch, timm,
transformers, diffusers: seconds), so the signature is read from the module's syntax tree
instead. The module's file is found the way ``import`` would find it, but nothing is executed.

What can be read this way (everything else answers "unknown", and the caller imports the factory
and uses :func:`inspect.signature`, which is always right, only slower):

* a function defined at module level without decorators;
* a class: its own ``__init__``; else the ``__init__`` it inherits through single inheritance from
  classes that are themselves readable (``object``, ``Generic``, ``Protocol`` and ``ABC`` add
  nothing); ``@dataclass`` classes by their fields; a ``@classmethod``/``@staticmethod`` of a
  readable class (``"pkg.mod:Model.from_config"``);
* a name assigned from another readable name, from an import of one, or from a call to a
  module-level function whose last statement returns one of its own nested functions (the
  ``build_x = _builder("x")`` idiom);
* in any case, names bound conditionally (inside ``if``/``try``), under a decorator, by a
  metaclass, ``__new__``, module ``__getattr__`` or ``import *`` are unknown.

``rdm plugins --check`` imports every factory and compares the real signature with the one read
here, so a divergence cannot go unnoticed.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

from rdm_core.source_names import (
    MAX_DEPTH,
    MissingAttribute,
    MissingModule,
    SourceRef,
    Unknown,
    binding,
    bound_names,
    follow,
    import_target,
    lookup,
    member,
)

TRIVIAL_BASE_MODULES = frozenset({"typing", "typing_extensions", "abc", "builtins"})
TRIVIAL_BASES = frozenset({"object", "Generic", "Protocol", "ABC"})


@dataclass(frozen=True)
class StaticDefault:
    """A parameter default as written in the source (never evaluated)."""

    source: str

    def __repr__(self) -> str:
        return self.source


# -- parameters -------------------------------------------------------------------------------


def _annotation(arg: ast.arg) -> Any:
    """The annotation as source text (what ``from __future__ import annotations`` keeps), so
    recipe values can be checked against simple types (:mod:`rdm_core.recipe.arg_types`)."""
    return inspect.Parameter.empty if arg.annotation is None else ast.unparse(arg.annotation)


def _function_parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> list[inspect.Parameter]:
    a = fn.args
    P = inspect.Parameter
    positional = [*a.posonlyargs, *a.args]
    defaults: list[Any] = [P.empty] * (len(positional) - len(a.defaults)) + [
        StaticDefault(ast.unparse(d)) for d in a.defaults
    ]
    params = [
        P(
            arg.arg,
            P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD,
            default=d,
            annotation=_annotation(arg),
        )
        for i, (arg, d) in enumerate(zip(positional, defaults, strict=True))
    ]
    if a.vararg is not None:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        default = P.empty if d is None else StaticDefault(ast.unparse(d))
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=default, annotation=_annotation(arg)))
    if a.kwarg is not None:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    if drop_first:
        if not params or params[0].kind not in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            raise Unknown(f"{fn.name} has no self/cls parameter")
        params = params[1:]
    return params


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_trivial_base(module: str, base: ast.expr) -> bool:
    """``object``, or ``Generic``/``Protocol``/``ABC`` imported from typing or abc (no ``__init__``)."""
    if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T]
        base = base.value
    if isinstance(base, ast.Name) and base.id == "object":
        return True
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):  # typing.Generic
        name, owner = base.attr, base.value.id
    elif isinstance(base, ast.Name):
        name, owner = base.id, base.id
    else:
        return False
    if name not in TRIVIAL_BASES:
        return False
    try:
        bound, info = binding(module, owner)
    except (Unknown, MissingAttribute, MissingModule):
        return False
    if isinstance(bound, ast.ImportFrom) and bound.level == 0:
        return (bound.module or "") in TRIVIAL_BASE_MODULES
    if isinstance(bound, ast.Import):
        return import_target(module, info.is_package, bound, owner).module in TRIVIAL_BASE_MODULES
    return False


def _dataclass_fields(cls: ast.ClassDef, module: str, depth: int, kw_only: bool) -> list[inspect.Parameter]:
    P = inspect.Parameter
    inherited: list[inspect.Parameter] = []
    for base in cls.bases:
        if _is_trivial_base(module, base):
            continue
        ref = follow(SourceRef(module, base), depth + 1)
        if not isinstance(ref.node, ast.ClassDef) or "dataclass" not in map(_decorator_name, ref.node.decorator_list):
            raise Unknown("a dataclass with a base that is not a readable dataclass")
        inherited = _class_parameters(ref.node, ref.module, depth + 1)
    own: list[inspect.Parameter] = []
    for stmt in cls.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        annotation = ast.unparse(stmt.annotation)
        if "ClassVar" in annotation or "KW_ONLY" in annotation or "InitVar" in annotation:
            if "ClassVar" in annotation:
                continue
            raise Unknown("KW_ONLY/InitVar dataclass fields")
        default: Any = P.empty
        if stmt.value is not None:
            value = stmt.value
            if isinstance(value, ast.Call) and _decorator_name(value) == "field":
                keywords = {k.arg: k.value for k in value.keywords}
                init = keywords.get("init")
                if isinstance(init, ast.Constant) and init.value is False:
                    continue
                if init is not None or "kw_only" in keywords:
                    raise Unknown("dataclass field options")
                if "default" in keywords or "default_factory" in keywords:
                    default = StaticDefault(ast.unparse(value))
            else:
                default = StaticDefault(ast.unparse(value))
        own.append(P(stmt.target.id, P.KEYWORD_ONLY if kw_only else P.POSITIONAL_OR_KEYWORD, default=default))
    names = {p.name for p in own}
    return [p for p in inherited if p.name not in names] + own


def _class_parameters(cls: ast.ClassDef, module: str, depth: int) -> list[inspect.Parameter]:
    if depth > MAX_DEPTH:
        raise Unknown("inheritance chain too long")
    if cls.keywords:
        raise Unknown(f"class {cls.name} has a metaclass or class keywords")
    body = {name: value for stmt in cls.body for name, value in bound_names(stmt)}
    if "__new__" in body or "__signature__" in body:
        raise Unknown(f"class {cls.name} defines __new__ or __signature__")
    init = body.get("__init__")
    decorators = cls.decorator_list
    if isinstance(init, ast.FunctionDef):
        if init.decorator_list:
            raise Unknown(f"{cls.name}.__init__ is decorated")
        if any(_decorator_name(d) != "dataclass" for d in decorators):
            raise Unknown(f"class {cls.name} is decorated")
        return _function_parameters(init, drop_first=True)
    if init is not None:
        raise Unknown(f"{cls.name}.__init__ is not a plain function")
    if decorators:
        if len(decorators) != 1 or _decorator_name(decorators[0]) != "dataclass":
            raise Unknown(f"class {cls.name} is decorated")
        options = {k.arg: k.value for k in decorators[0].keywords} if isinstance(decorators[0], ast.Call) else {}
        if any(k not in ("frozen", "eq", "order", "repr", "slots", "kw_only") for k in options):
            raise Unknown("dataclass options")
        kw_only = isinstance(options.get("kw_only"), ast.Constant) and options["kw_only"].value is True
        return _dataclass_fields(cls, module, depth, kw_only)
    bases = [b for b in cls.bases if not _is_trivial_base(module, b)]
    if not bases:
        return []  # object.__init__: no arguments
    if len(bases) > 1:
        raise Unknown(f"class {cls.name} has several bases and no __init__ of its own")
    ref = follow(SourceRef(module, bases[0]), depth + 1)
    if not isinstance(ref.node, ast.ClassDef):
        raise Unknown(f"the base of {cls.name} is not a readable class")
    return _class_parameters(ref.node, ref.module, depth + 1)


def _returned_inner_function(fn: ast.FunctionDef) -> ast.FunctionDef:
    """The nested function that a factory-of-factories returns (its last statement)."""
    last = fn.body[-1] if fn.body else None
    if fn.decorator_list or not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)):
        raise Unknown(f"{fn.name} does not end by returning a nested function")
    for stmt in fn.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == last.value.id and not stmt.decorator_list:
            return stmt
    raise Unknown(f"{fn.name} returns something other than one of its nested functions")


def _parameters(ref: SourceRef, depth: int, method_of: ast.ClassDef | None = None) -> list[inspect.Parameter]:
    ref = follow(ref, depth)
    node = ref.node
    if isinstance(node, ast.ClassDef):
        return _class_parameters(node, ref.module, depth)
    if isinstance(node, ast.FunctionDef):
        decorators = [_decorator_name(d) for d in node.decorator_list]
        if method_of is not None and decorators in (["classmethod"], ["staticmethod"]):
            return _function_parameters(node, drop_first=decorators == ["classmethod"])
        if decorators or method_of is not None:
            raise Unknown(f"{node.name} is decorated or an instance method")
        return _function_parameters(node, drop_first=False)
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
        maker = follow(SourceRef(ref.module, node.func), depth + 1)
        if isinstance(maker.node, ast.FunctionDef):
            return _function_parameters(_returned_inner_function(maker.node), drop_first=False)
    raise Unknown("not a function, a class or a factory-of-factories call")


def _resolve_target(target: str) -> tuple[SourceRef, ast.ClassDef | None]:
    module, _, qualname = target.partition(":")
    if not module or not qualname:
        raise Unknown(f"{target!r} is not 'module:attribute'")
    parts = qualname.split(".")
    ref = lookup(module, parts[0], 0)
    owner: ast.ClassDef | None = None
    for part in parts[1:]:
        ref = follow(ref, 1)
        owner = ref.node if isinstance(ref.node, ast.ClassDef) else None
        ref = member(ref, part, 1)
    return ref, owner


def static_parameters(target: str) -> list[inspect.Parameter] | None:
    """The call parameters of factory ``"module:qualname"``, or ``None`` if unknown statically.

    For a class, the parameters of constructing it (``self`` dropped).
    """
    try:
        ref, owner = _resolve_target(target)
        return _parameters(ref, 0, owner)
    except (Unknown, MissingModule, MissingAttribute, RecursionError):
        return None


def check_target(target: str) -> str | None:
    """A one-line problem if ``"module:attr"`` certainly cannot be imported, else ``None``.

    ``None`` also when the source cannot decide; only importing can say more.
    """
    module, _, qualname = target.partition(":")
    if not module or not qualname:
        return f"factory {target!r} must look like 'module:attribute'"
    try:
        _resolve_target(target)
    except MissingModule as exc:
        return f"module {exc.args[0]!r} not found"
    except MissingAttribute as exc:
        return str(exc.args[0])
    except (Unknown, RecursionError):
        return None
    return None


def _class_defines(cls: ast.ClassDef, module: str, member: str, depth: int) -> bool:
    if depth > MAX_DEPTH:
        raise Unknown("inheritance chain too long")
    if cls.keywords:
        raise Unknown(f"class {cls.name} has a metaclass or class keywords")
    if any(n == member for stmt in cls.body for n, _ in bound_names(stmt)):
        return True
    for base in cls.bases:
        if _is_trivial_base(module, base):
            continue
        ref = follow(SourceRef(module, base), depth + 1)
        if not isinstance(ref.node, ast.ClassDef):
            raise Unknown(f"a base of {cls.name} is not a readable class")
        if _class_defines(ref.node, ref.module, member, depth + 1):
            return True
    return False


def static_defines(target: str, member: str) -> bool | None:
    """Whether factory ``"module:qualname"`` defines attribute ``member`` (``None``: unknown).

    A function never does; a class does if its body or a readable base binds ``member``.
    """
    try:
        ref, _ = _resolve_target(target)
        ref = follow(ref, 0)
        node = ref.node
        if isinstance(node, ast.FunctionDef) and not node.decorator_list:
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            maker = follow(SourceRef(ref.module, node.func), 1)
            if isinstance(maker.node, ast.FunctionDef):
                _returned_inner_function(maker.node)  # a factory-of-factories returns a plain function
                return False
        if isinstance(node, ast.ClassDef):
            return _class_defines(node, ref.module, member, 0)
    except (Unknown, MissingModule, MissingAttribute, RecursionError):
        return None
    return None


def static_product_defines(target: str, member: str) -> bool | None:
    """Whether what factory ``"module:qualname"`` builds defines ``member`` (``None``: unknown).

    A class builds itself; an undecorated function builds the class its return annotation names.
    """
    try:
        ref, _ = _resolve_target(target)
        ref = follow(ref, 0)
        node = ref.node
        if isinstance(node, ast.FunctionDef) and not node.decorator_list and node.returns is not None:
            returns = node.returns
            if isinstance(returns, ast.Constant) and isinstance(returns.value, str):
                returns = ast.parse(returns.value, mode="eval").body
            ref = follow(SourceRef(ref.module, returns), 1)
            node = ref.node
        if isinstance(node, ast.ClassDef):
            return _class_defines(node, ref.module, member, 0)
    except (Unknown, MissingModule, MissingAttribute, RecursionError, SyntaxError):
        return None
    return None
