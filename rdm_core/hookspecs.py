"""The hooks a plugin implements: one ``rdm_register_<kind>(registry)`` per registry.

A plugin module (the target of an entry point in group ``rdm``) implements any subset::

    from rdm_core import hookimpl

    @hookimpl
    def rdm_register_encoders(registry):
        registry.add("my_encoder", "my_pkg.encoder:build", spec=MY_SPEC)

Implementations must be cheap: register names, specs and lazy factories only. ``docs/plugins.md``
lists these signatures; a test keeps the two in sync.
"""

from __future__ import annotations

import pluggy

from rdm_core.registry import CommandSpec, Registry  # noqa: F401  (documented types)

hookspec = pluggy.HookspecMarker("rdm")
hookimpl = pluggy.HookimplMarker("rdm")


@hookspec
def rdm_register_encoders(registry: Registry) -> None:
    """Register frozen encoders: ``registry.add(name, factory, spec=EncoderSpec(...))``.

    The factory is called as ``factory(variant="full"|"tiny", weights=path_or_None, **args)`` and
    returns an :class:`rdm_core.interfaces.Encoder`.
    """


@hookspec
def rdm_register_kernels(registry: Registry) -> None:
    """Register kernels: ``registry.add(name, factory)``; ``factory(bandwidth=..., **args)``
    returns an :class:`rdm_core.interfaces.Kernel`."""


@hookspec
def rdm_register_references(registry: Registry) -> None:
    """Register reference-set kinds (``nystrom``, ``exact``, ``rff``, ...).

    The factory is a class with ``build(features, kernel, **args)`` and ``load(path)``
    classmethods returning an :class:`rdm_core.interfaces.ReferenceSet`.
    """


@hookspec
def rdm_register_objectives(registry: Registry) -> None:
    """Register training objectives: ``registry.add(name, factory, spec=ObjectiveSpec(settings=...))``.

    ``factory(context)`` receives an :class:`rdm_core.interfaces.ObjectiveContext` and returns an
    :class:`rdm_core.interfaces.Objective` (global features -> scalar loss and logs). The spec's
    ``settings`` dataclass is the schema of the recipe's ``objective:`` section.
    """


@hookspec
def rdm_register_generators(registry: Registry) -> None:
    """Register generators: ``factory(**args)`` returns an :class:`rdm_core.interfaces.Generator`."""


@hookspec
def rdm_register_trainers(registry: Registry) -> None:
    """Register trainers: ``factory(recipe, options)`` (options: :class:`rdm_core.interfaces.TrainerOptions`)
    returns an :class:`rdm_core.interfaces.Trainer`; ``rdm train`` dispatches on ``train.trainer``."""


@hookspec
def rdm_register_metrics(registry: Registry) -> None:
    """Register evaluation metrics: ``factory(**args)`` returns a :class:`rdm_core.interfaces.Metric`."""


@hookspec
def rdm_register_data_sources(registry: Registry) -> None:
    """Register image and prompt sources: ``factory(**args)`` returns an ``ImageSource`` or
    ``PromptSource``."""


@hookspec
def rdm_register_stages(registry: Registry) -> None:
    """Register stages of ``rdm run``: ``factory()`` returns a :class:`rdm_core.run.stage.Stage`
    (a name, its place in the run, whether a recipe needs it, what its outputs depend on, and
    how to produce them)."""


@hookspec
def rdm_register_commands(registry: Registry) -> None:
    """Register CLI command groups: ``registry.add(name, "pkg.cli:configure", spec=CommandSpec(help))``.

    ``configure(parser)`` adds the command's arguments to an ``argparse`` parser and returns the
    function ``run(args) -> int`` that executes it.
    """


@hookspec
def rdm_register_recipes(registry: Registry) -> None:
    """Register recipes a plugin ships: ``registry.add(name, "my_pkg:recipes/my-recipe.yaml", help=...)``.

    The target is a path, or ``"package:relative/path.yaml"`` for a file inside an installed
    package (found without importing it). ``rdm recipes`` lists them with their plugin; recipes
    and ``extends:`` can name them.
    """
