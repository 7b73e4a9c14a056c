"""``rdm validate``: check every name and argument of a recipe without loading any weights.

Each check binds the recipe's arguments to the factory's signature without calling the factory.
The signature is read from the factory's source (:mod:`rdm_core.factory_source`), so validating
imports none of the plugins' heavy libraries; a factory whose source cannot be read that way is
imported instead, and so is one that checks its arguments further itself (``ArgsChecker``; such
factories live in light modules). Errors about keys a parent recipe set name that file.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

from rdm_core.errors import RecipeError, UnknownNameError
from rdm_core.plugins import registry
from rdm_core.recipe.assemble import plain
from rdm_core.recipe.load import recipe_origin, recipe_path
from rdm_core.recipe.ranges import check_ranges

CHOICES = {
    "encoders.variant": ("full", "tiny"),
    "train.precision": ("bf16", "fp32", "fp64"),
    "train.schedule": ("constant", "cosine"),
    "run.device": ("auto", "cpu", "cuda"),
}


@runtime_checkable
class BankMetric(Protocol):
    """A metric scored against evaluation banks of the reference build (``train`` and/or ``val``)."""

    bank_splits: tuple[str, ...]


_CHECK_FILES: ContextVar[bool] = ContextVar("rdm_validate_check_files", default=True)


def require_file(path: Any, where: str, fix: str, *, directory: bool = False) -> None:
    """One-line :class:`RecipeError` when an input file the recipe names does not exist.

    ``pkg:<package>/<file>`` paths are resolved inside the installed package. Skipped inside
    ``validate_recipe(..., files=False)``.
    """
    from rdm_core.prompts import resolve_path

    if path is None or not _CHECK_FILES.get():
        return
    found = resolve_path(str(path))
    if not (found.is_dir() if directory else found.is_file()):
        raise RecipeError(f"{where}: {'directory' if directory else 'file'} {path} does not exist.", fix)


def check_component(kind: str, component: Any, where: str) -> None:
    """Check a nested ``{name, args}`` component (a ``mix`` part, a filter's source) like a top-level one."""
    comp = plain(component)
    if not isinstance(comp, dict) or not comp.get("name"):
        raise RecipeError(
            f"{where}: expected {{name: ..., args: {{...}}}}, got {comp!r}.", "name a registered component"
        )
    _component(None, kind, str(comp["name"]), comp.get("args") or {}, where)


def _set_in(recipe: Any, dotted: str) -> str:
    """`` (set in FILE)`` when a parent recipe set the key (not the recipe itself, not ``--set``)."""
    origin = recipe_origin(recipe, dotted)
    own = recipe_path(recipe)
    if not origin or origin.startswith("--set") or (own is not None and origin == str(own.resolve())):
        return ""
    return f" (set in {origin})"


def _choice(recipe: Any, dotted: str) -> None:
    section, key = dotted.split(".")
    value = getattr(getattr(recipe, section), key)
    if value not in CHOICES[dotted]:
        raise RecipeError(
            f"{dotted} = {value!r}{_set_in(recipe, dotted)} is not allowed.",
            f"use one of: {', '.join(CHOICES[dotted])}",
        )


def _name(kind: str, name: str, where: str) -> None:
    try:
        registry(kind).get(name)
    except UnknownNameError as exc:
        from rdm_core.plugins import get_host

        provider = get_host().disabled_provider(kind, name)
        if provider is not None:
            raise RecipeError(
                f"{where}: {exc.kind} {name!r} is provided by plugin {provider!r}, which is disabled.",
                f"remove {provider!r} from RDM_DISABLE_PLUGINS (see `rdm plugins`)",
            ) from None
        raise RecipeError(f"{where}: {exc.problem}", exc.fix) from None


def _component(recipe: Any, kind: str, name: str, args: Any, where: str, args_key: str = "") -> None:
    """Check a component's name, then its arguments (``args_key``: their dotted place in ``recipe``)."""
    _name(kind, name, where)
    args = plain(args) or {}
    if recipe is None or not args_key:
        registry(kind).check_args(name, args, where)
        return
    try:
        registry(kind).check_args(name, args, where, origin=lambda key: _set_in(recipe, f"{args_key}.{key}"))
    except RecipeError as exc:
        if not any(_set_in(recipe, f"{args_key}.{key}") for key in args):
            raise
        raise RecipeError(
            exc.problem, f"{exc.fix}; or drop the inherited arguments with `args: !replace {{...}}` in your recipe"
        ) from None


def _prompt_conditioned(generator: str, where: str) -> None:
    """The generator encodes prompts, read from its class's source (nothing is imported or built);
    a factory whose product is unknown statically is checked when the generate stage builds it."""
    if not registry("generators").get(generator).product_may_define("conditions_from_prompts"):
        raise RecipeError(
            f"{where} needs a prompt-conditioned generator; {generator!r} does not encode prompts.",
            f"remove {where}, or use a text-conditioned generator",
        )


def validate_recipe(recipe: Any, *, files: bool = True, metric_args: bool = True) -> list[str]:
    """Run every check; return a description of each check that passed.

    Args:
        recipe: a loaded recipe.
        files: also require every input file the recipe names (prompt sets, ...) to exist.
            ``False`` checks names and arguments only (a full-size recipe on a machine without
            its data).
        metric_args: also bind ``eval.args`` to the metric factories and check the real banks
            they compare against, which imports evaluation code; ``rdm train`` passes ``False``
            and checks only that the metric names are registered.

    Raises:
        RecipeError: on the first problem, naming it and the fix.
    """
    token = _CHECK_FILES.set(files)
    try:
        return _validate(recipe, metric_args)
    finally:
        _CHECK_FILES.reset(token)


def _validate(recipe: Any, metric_args: bool) -> list[str]:
    done: list[str] = []
    for dotted in CHOICES:
        _choice(recipe, dotted)
    done.append("choices (variant, precision, schedule, device)")

    enc = recipe.encoders
    if not enc.train:
        raise RecipeError("encoders.train is empty.", "list at least one training encoder")
    overlap = set(enc.train) & set(enc.held_out)
    if overlap:
        raise RecipeError(
            f"encoders {sorted(overlap)} are both training and held-out.",
            "held-out encoders must be disjoint from training ones",
        )
    for name in [*enc.train, *enc.held_out]:
        args = plain(enc.args).get(name, {})
        _component(recipe, "encoders", name, args, f"encoders ({name})", f"encoders.args.{name}")
    for name in [*plain(enc.args), *plain(enc.weights)]:
        if name not in enc.train and name not in enc.held_out:
            raise RecipeError(
                f"encoders.args/weights mention {name!r}, which is not in the battery.",
                "add it to encoders.train or encoders.held_out, or remove the entry",
            )
    done.append(f"{len(enc.train)} training + {len(enc.held_out)} held-out encoders")

    _component(recipe, "generators", recipe.generator.name, recipe.generator.args, "generator", "generator.args")
    if recipe.train.sample_prompts:
        _prompt_conditioned(recipe.generator.name, "train.sample_prompts")
    done.append(f"generator {recipe.generator.name!r}")

    done.extend(_objective(recipe))

    refs = recipe.references
    from omegaconf import OmegaConf

    if not OmegaConf.is_missing(refs.train, "name"):  # reading a "???" value would raise
        train = refs.train
        _component(recipe, "data_sources", train.name, train.args, "references.train", "references.train.args")
    if refs.val is not None:
        _component(recipe, "data_sources", refs.val.name, refs.val.args, "references.val", "references.val.args")
    done.append("reference sources")

    check_ranges(recipe)
    tr = recipe.train
    _name("trainers", tr.trainer, "train.trainer")
    if tr.rollout % tr.micro_batch:
        raise RecipeError(
            f"train.rollout {tr.rollout} is not a multiple of train.micro_batch {tr.micro_batch}.",
            "make rollout = micro_batch x world_size x chunks",
        )
    if tr.chunks is not None and tr.rollout % (tr.micro_batch * tr.chunks):
        raise RecipeError(
            f"train.rollout {tr.rollout} != micro_batch {tr.micro_batch} x world_size x chunks {tr.chunks}.",
            "fix chunks, or leave it null to derive it from the world size",
        )
    if len(tr.betas) != 2:
        raise RecipeError(f"train.betas must have two values, got {list(tr.betas)}.", "use e.g. [0.9, 0.95]")
    done.append(f"trainer {tr.trainer!r}, rollout {tr.rollout}")

    for metric in recipe.eval.metrics:
        where = f"eval.metrics ({metric})"
        if not metric_args:  # a registry string: the metric's module is not imported
            _name("metrics", metric, where)
            continue
        args = plain(recipe.eval.args).get(metric, {})
        _component(recipe, "metrics", metric, args, where, f"eval.args.{metric}")
        factory = registry("metrics").resolve(metric)
        if isinstance(factory, BankMetric) and "val" in factory.bank_splits and refs.val is None:
            raise RecipeError(
                f"{where} compares against real val banks, but references.val is not set "
                "(the reference build makes no val banks).",
                "set references.val to held-out images (or renders), or drop the metric",
            )
    done.append(f"metrics {list(recipe.eval.metrics)}")
    return done


def _objective(recipe: Any) -> list[str]:
    """The objective is registered, and its own check (if it declares one) passes."""
    from omegaconf import OmegaConf

    from rdm_core.recipe.objective import objective_name, objective_spec, resolve_declared

    name = objective_name(recipe.objective)
    _name("objectives", name, "objective.name")
    missing = sorted(OmegaConf.missing_keys(recipe.objective))  # full dotted keys
    if missing:
        raise RecipeError(f"objective {name!r} needs {missing[0]}, which is not set.", f"set `{missing[0]}`")
    spec = objective_spec(name)
    if spec is None or spec.check is None:
        return [f"objective {name!r}"]
    return list(resolve_declared(spec.check)(recipe))
