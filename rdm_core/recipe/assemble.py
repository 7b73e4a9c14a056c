"""Turning a loaded recipe into plugin objects, through the registries.

These are the only places where recipe sections meet factories, so every command (train,
reference build, generate, eval) assembles components the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import read_meta
from rdm_core.errors import ArtifactError
from rdm_core.plugins import registry
from rdm_core.seeding import seeded_init

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.interfaces import (
        Encoder,
        Generator,
        ImageSource,
        Objective,
        ObjectiveContext,
        ReferenceSet,
        Trainer,
        TrainerOptions,
    )


def plain(node: Any) -> Any:
    """An OmegaConf node as plain Python containers (factories never see OmegaConf types)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def encoder_names(recipe: Any, which: str = "train") -> list[str]:
    """``train``, ``held_out`` or ``all`` (train first, then held-out; panel order kept)."""
    train, held = list(recipe.encoders.train), list(recipe.encoders.held_out)
    return {"train": train, "held_out": held, "all": train + [n for n in held if n not in train]}[which]


def build_encoder(recipe: Any, name: str, device: Any = "cpu") -> Encoder:
    """One frozen encoder as the recipe configures it (variant, local weights, extra args)."""
    args = dict(plain(recipe.encoders.args).get(name, {}))
    weights = plain(recipe.encoders.weights).get(name)
    with seeded_init("encoder", name, recipe.encoders.variant):  # random stand-ins identical in every process
        encoder = registry("encoders").create(name, variant=recipe.encoders.variant, weights=weights, **args)
    return encoder.to(device)


def build_encoders(recipe: Any, which: str = "train", device: Any = "cpu") -> dict[str, Encoder]:
    return {name: build_encoder(recipe, name, device) for name in encoder_names(recipe, which)}


def build_generator(recipe: Any, device: Any = "cpu") -> Generator:
    """The generator with its base weights loaded (when the recipe names them)."""
    section = recipe.generator
    with seeded_init("generator", section.name):
        gen = registry("generators").create(section.name, **plain(section.args))
    if section.weights:  # an rdm run/checkpoint, or any container the generator reads
        from rdm_core.checkpoints import load_generator_weights

        load_generator_weights(section.weights, gen, format=section.weights_format)
    module = gen.trainable_module()
    module.to(device)
    return gen


def build_data_source(component: Any) -> ImageSource:
    return registry("data_sources").create(component.name, **plain(component.args))


def build_trainer(recipe: Any, options: TrainerOptions | None = None) -> Trainer:
    """The trainer ``train.trainer`` names, built as ``factory(recipe, options)``."""
    from rdm_core.interfaces import TrainerOptions

    return registry("trainers").create(recipe.train.trainer, recipe=recipe, options=options or TrainerOptions())


def build_objective(context: ObjectiveContext) -> Objective:
    """The objective ``objective.name`` names, built as ``factory(context)``.

    Raises:
        PluginError: the factory returned something without ``loss(features)``.
    """
    from rdm_core.errors import PluginError
    from rdm_core.interfaces import Objective
    from rdm_core.recipe.objective import objective_name

    name = objective_name(context.recipe.objective)
    objective = registry("objectives").resolve(name)(context)
    if not isinstance(objective, Objective):
        raise PluginError(
            f"objective {name!r} built a {type(objective).__name__}, which has no loss(features) method.",
            f"fix plugin {registry('objectives').get(name).plugin!r}: its factory must return an Objective",
        )
    return objective


def reference_path(recipe: Any, encoder: str) -> Path:
    """Where the training reference set of ``encoder`` lives: ``<references.dir>/<encoder>.safetensors``."""
    return Path(recipe.references.dir) / f"{encoder}.safetensors"


def load_reference(path: str | Path, expect: dict[str, Any] | None = None, device: Any = "cpu") -> ReferenceSet:
    """Load any reference-set file; its header names its kind, whose class checks ``expect``."""
    meta = read_meta(path)
    kind = meta.get("kind")
    if not kind:
        raise ArtifactError(f"{path} has no reference-set header (no 'kind').", "rebuild it with `rdm reference build`")
    cls = registry("references").resolve(kind)
    return cls.load(str(path), expect=expect, device=device)
