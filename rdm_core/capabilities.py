"""Optional capabilities: what a component MAY offer beyond the required contract of its kind.

The required contracts (:class:`~rdm_core.interfaces.Generator`, ``ReferenceSet``, ``ImageSource``,
...) live in :mod:`rdm_core.interfaces`. Everything here is optional: a plugin declares a
capability simply by implementing its methods (the protocols are structural, nothing to inherit),
and code that needs one checks it with ``isinstance``, never with ``hasattr``. When a command
cannot do without a capability it calls :func:`require`, which raises one
:class:`MissingCapabilityError` naming the component, what it lacks and who needs it. When a
capability only makes something better (a cheaper path, a nicer manifest), the caller falls back
to the required contract; each protocol's docstring says what that fallback is.

``isinstance`` on a runtime-checkable protocol checks that the members *exist*, not their
signatures; the signatures below are the contract, and ``tests/core/test_capabilities.py`` checks
every shipped component that declares a capability against them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from rdm_core.errors import RdmError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from torch import Tensor

    from rdm_core.interfaces import Conditions, ReferenceSet

__all__ = [
    "CaptionedSource",
    "ClassConditionedGenerator",
    "ConfigurableReferenceSet",
    "ContextEncoder",
    "DescribedSource",
    "FeatureCoupling",
    "GradientCheckpointing",
    "MissingCapabilityError",
    "PlanStatsProvider",
    "PlottingObjective",
    "PromptConditionedGenerator",
    "RadialKernel",
    "Scorer",
    "StatTokenSource",
    "StatefulObjective",
    "SteppedObjective",
    "SteppedReferenceSet",
    "TeacherSampler",
    "capability_members",
    "require",
]

C = TypeVar("C")


class MissingCapabilityError(RdmError):
    """A component lacks an optional capability that the requested operation needs."""


def capability_members(capability: type) -> tuple[str, ...]:
    """The public methods and attributes a capability protocol declares, in declaration order."""
    names: list[str] = []
    for cls in reversed(capability.__mro__):
        if cls in (object, Protocol, Generic):
            continue
        declared = [*inspect.get_annotations(cls), *cls.__dict__]
        names += [n for n in declared if not n.startswith("_")]
    return tuple(dict.fromkeys(names))


def _is_method(capability: type, name: str) -> bool:
    member = next((c.__dict__[name] for c in capability.__mro__ if name in c.__dict__), None)
    return callable(member) or isinstance(member, (classmethod, staticmethod))


def require(component: object, capability: type[C], *, what: str, needed_by: str, fix: str) -> C:
    """Return ``component`` if it implements ``capability``, else raise one clear error.

    Args:
        component: the object to check (a generator, reference set, data source, ...).
        capability: a runtime-checkable protocol of this module.
        what: how the user knows the component, e.g. ``"generator 'digits-mlp'"``.
        needed_by: what needs the capability, e.g. ``"rdm generate --prompt"``.
        fix: what the user can do instead.

    Raises:
        MissingCapabilityError: ``component`` lacks some of the capability's members; the message
            lists the missing ones.
    """
    if isinstance(component, capability):
        return component
    present = set(dir(component))
    missing = [m for m in capability_members(capability) if m not in present]
    listed = ", ".join(f"{m}()" if _is_method(capability, m) else m for m in missing)
    raise MissingCapabilityError(
        f"{what} ({type(component).__name__}) cannot serve {needed_by}: it lacks {listed} "
        f"(capability {capability.__name__}).",
        fix,
    )


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


@runtime_checkable
class PromptConditionedGenerator(Protocol):
    """A text-conditioned generator that encodes arbitrary prompts into conditions.

    Needed by ``rdm generate --prompt/--prompts``, PickScore with a prompt file, GenEval and
    teacher-rendered reference sources. Without it those refuse with
    :class:`MissingCapabilityError`; ``rdm generate --num`` and seeded renders use
    ``sample_conditions`` instead.
    """

    def conditions_from_prompts(self, prompts: Sequence[str]) -> Conditions:
        """Conditions for exactly ``prompts``, one row per prompt, in order.

        Encoded from the prompts' own text (never looked up in a training pool, so any string
        works). ``captions`` is ``list(prompts)``; ``caption_ids`` is ``None`` (the rows index no
        prompt table). Runs without gradients; the result may live on any device (callers
        ``.to(device)`` it).
        """
        ...


@runtime_checkable
class ClassConditionedGenerator(Protocol):
    """A class-conditional generator (e.g. ImageNet) that builds conditions from class ids.

    ``num_classes`` is the number of classes; ids are ``0 .. num_classes - 1`` in the order of
    the generator's class list. Without this capability class-conditional renders rely on
    ``sample_conditions`` (which draws ids itself).
    """

    num_classes: int

    def conditions_from_classes(self, class_ids: Tensor) -> Conditions:
        """Conditions for ``class_ids``: a ``(n,)`` int64 tensor of ids in ``[0, num_classes)``.

        ``inputs`` carries the ids in whatever form ``generate`` consumes; ``captions`` are the
        class names when the generator knows them, else ``None``.
        """
        ...


@runtime_checkable
class TeacherSampler(Protocol):
    """A generator that can also sample with its multi-step teacher (no gradients).

    Needed by ``rdm generate --teacher-steps`` and teacher-rendered reference sources; without
    it they refuse with :class:`MissingCapabilityError`.
    """

    def teacher_sample(self, noise: Tensor, conditions: Conditions, steps: int) -> Tensor:
        """``steps``-step sample from the same noise and conditions ``generate`` takes.

        Same shapes, device, dtype and ``[0, 1]`` range as ``generate``; runs under
        ``torch.no_grad``.
        """
        ...


@runtime_checkable
class GradientCheckpointing(Protocol):
    """A generator that can trade compute for memory with activation checkpointing.

    Needed when a recipe sets ``generator.gradient_checkpointing: true``; the trainer refuses the
    recipe with :class:`MissingCapabilityError` when the generator lacks it.
    """

    def set_gradient_checkpointing(self, on: bool) -> None:
        """Switch checkpointing of the trainable module on or off.

        Gradients must stay exactly those of the plain forward: GradCache replays each chunk
        with the same RNG state, so a checkpoint must not draw fresh randomness on recompute.
        """
        ...


@runtime_checkable
class PlanStatsProvider(Protocol):
    """A generator that reports its own size for ``rdm plan`` (memory and time per step).

    Implemented as a ``classmethod``/``staticmethod`` on the registered class, it is called with
    the recipe's ``generator.args`` and nothing is built (no weights needed); implemented as an
    instance method, ``rdm plan`` builds the generator first and calls it without arguments.
    Without it ``rdm plan`` uses a documented size table for the known models, else counts the
    built module's parameters (FLOPs = 2 x params, a lower bound).
    """

    def plan_stats(self, **generator_args: Any) -> dict[str, Any]:
        """Sizes per sample, from configs only.

        Required keys: ``params`` (trainable parameter count) and ``flops_per_sample`` (one
        forward of the trainable part, in FLOPs). Optional: ``frozen_params`` and
        ``frozen_flops_per_sample`` (the frozen part gradients flow through, e.g. a VAE
        decoder), ``frozen_activation_bytes_per_sample``, ``tokens``, ``blocks``, ``width``.
        Unknown ``generator_args`` are ignored.
        """
        ...


@runtime_checkable
class ContextEncoder(Protocol):
    """A generator whose conditions are fixed-length text contexts that can be precomputed.

    ``rdm context build`` stores such contexts in a pool so training never runs the text
    encoder; a generator without this capability encodes its prompts itself and the command
    refuses it with :class:`MissingCapabilityError`.
    """

    #: tokens per context row
    ctx_len: int
    #: width of one context token
    ctx_dim: int

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """``(n, ctx_len, ctx_dim)`` float32 contexts of ``prompts``, without gradients."""
        ...


# --------------------------------------------------------------------------------------------
# Kernels and reference sets
# --------------------------------------------------------------------------------------------


@runtime_checkable
class RadialKernel(Protocol):
    """A kernel that is a function of the squared distance only: ``k(x, y) = f(|x - y|^2)``.

    The fused MMD estimator needs it (it evaluates ``f`` and ``f'`` on distance tiles without
    storing Gram matrices); kernels without it are refused by the fused path.
    """

    def profile(self, d2: Tensor, inplace: bool = False) -> Tensor:
        """``f(d2)`` elementwise; with ``inplace`` the input tensor may be overwritten."""
        ...

    def profile_with_derivative(self, d2: Tensor) -> tuple[Tensor, Any]:
        """``(f(d2), f'(d2))``; the derivative may be returned in a kernel-specific lazy form."""
        ...


@runtime_checkable
class SteppedReferenceSet(Protocol):
    """A reference set that draws fresh real rows (or projections) for every optimizer step.

    The trainer calls ``set_step(step)`` before each step's distance so that every rank draws
    the same rows and a resumed run draws the rows it would have drawn. References without it
    are deterministic functions of the features.
    """

    def set_step(self, step: int) -> None:
        """Seed the next draw from ``step`` (and the reference's own seed)."""
        ...


@runtime_checkable
class ConfigurableReferenceSet(Protocol):
    """A reference set with runtime options: settings that are not stored in its file.

    Examples: ``gen_chunk`` (generated rows per block of the exact repulsion term),
    ``memory_budget``. The trainer passes the recipe's values for the options a reference lists;
    references without this capability take none.
    """

    @classmethod
    def runtime_options(cls) -> tuple[str, ...]:
        """Names ``configure`` accepts."""
        ...

    def configure(self, **options: Any) -> ReferenceSet:
        """Set options (names from ``runtime_options``; others raise ``RecipeError``); returns self."""
        ...


# --------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------


@runtime_checkable
class SteppedObjective(Protocol):
    """An objective told where it is in training.

    The ``mmd`` objective sets its stepped references' step and updates its controller. Without
    it the objective sees only the features of each step.
    """

    def begin_step(self, step: int) -> None:
        """Called before optimizer step ``step`` (1-based) on every rank, also after a resume."""
        ...

    def after_step(self, logs: Mapping[str, Any]) -> None:
        """Called after an optimizer step that was taken (not on skipped steps), with the logs of
        that step's ``Objective.loss``."""
        ...


@runtime_checkable
class StatefulObjective(Protocol):
    """An objective whose state (a controller's, say) is saved in every checkpoint and restored
    on resume. Without it checkpoints hold no objective state."""

    def state_dict(self) -> dict[str, Any]:
        """Nested dicts/lists of tensors and JSON scalars."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...


@runtime_checkable
class FeatureCoupling(Protocol):
    """An objective that extends each chunk's features before the loss sees them (the joint
    image-text feature appends a text block chosen by the samples' conditions). Without it the
    loss sees the encoders' features as they are."""

    def couple(self, features: dict[str, Tensor], conditions: Any, frames: int = 1) -> dict[str, Tensor]:
        """``features`` of one chunk (rows = samples x ``frames``) and the chunk's conditions ->
        the features the loss is computed on; differentiable in ``features``."""
        ...


@runtime_checkable
class PlottingObjective(Protocol):
    """An objective that draws its own figures from the run's metrics log (the ``mmd`` controller's
    weights against its floors). The trainer calls it on rank 0 whenever it redraws ``loss.png``.
    Without it the run directory has only the trainer's figures."""

    def save_plots(self, metrics: Path, run_dir: Path) -> list[Path]:
        """Write PNGs into ``run_dir`` from the ``metrics.jsonl`` rows; returns the files written."""
        ...


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------


@runtime_checkable
class CaptionedSource(Protocol):
    """An image source that can list captions without decoding images.

    Used by the joint feature's text table, curation filters and teacher renders. Without it
    captions are read through ``read(indices).captions`` (decoding the images too).
    """

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        """Captions of ``indices`` in order, or ``None`` when the source has no captions."""
        ...


@runtime_checkable
class StatTokenSource(Protocol):
    """An image source with a cheap change token per item (file size and mtime, say).

    Reference manifests reuse an item's previous content fingerprint while its token is
    unchanged, so a re-run over a large folder does not re-hash every file. Without it every
    item is fingerprinted on every build.
    """

    def stat_token(self, index: int) -> str | None:
        """A token that changes whenever item ``index`` may have changed; ``None``: unknown."""
        ...


@runtime_checkable
class DescribedSource(Protocol):
    """An image source that describes itself for the reference manifest (kind, paths, counts).

    Without it the manifest records ``{}`` for the source.
    """

    def describe(self) -> dict[str, Any]:
        """JSON-ready description."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Scores images against captions (PickScore, a GenEval detector); used by curation filters.

    A curation ``scorer`` may also be a plain callable ``(images, captions) -> scores``.
    """

    def score(self, images: Tensor, captions: Sequence[str]) -> Tensor | Sequence[float]:
        """One score per image: ``images`` are ``(B, 3, H, W)`` in ``[0, 1]``, one caption each."""
        ...
