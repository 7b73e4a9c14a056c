"""The contracts every plugin implements.

Plain protocols and frozen dataclasses: a plugin satisfies them structurally, it never has to
inherit from rdm. Torch is imported only for type checking so that importing this module (and
therefore registering plugins) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor, nn

Split = Literal["train", "held_out"]
Precision = Literal["bf16", "fp32"]


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How a ``[0,1]`` NCHW image becomes the encoder's input.

    ``interpolation`` is the resize mode (``bilinear``, ``bicubic`` or ``tf1_bilinear`` for the
    FID Inception); ``mean``/``std`` are applied after the resize unless the model normalises
    internally (``normalize=False``, e.g. RADIO); ``value_range`` is the range the network
    expects after normalisation is skipped (``(-1, 1)`` means ``2x - 1``).
    """

    resolution: int
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    antialias: bool = True


@dataclass(frozen=True)
class WeightSource:
    """Where the pretrained weights come from (declared, used by loaders and ``fetch``)."""

    hub_id: str | None = None
    files: tuple[str, ...] = ()
    revision: str | None = None
    subfolder: str | None = None
    url: str | None = None
    note: str = ""


@dataclass(frozen=True)
class EncoderSpec:
    """Everything rdm needs to know about a frozen encoder, declared without loading it.

    Attributes:
        name: registry name (``dinov2``).
        library: backing library (``timm``, ``open_clip``, ``transformers``, ``diffusers``,
            ``torchvision``, ``rdm``).
        model_id: the library's model identifier.
        pooling: how tokens/maps become one vector (``cls``, ``avg``, ``attn``, ``summary``,
            ``patch_mean``, ``pool3``, ``ensemble``).
        dim: feature dimension of the full-size model.
        split: ``train`` (used in the loss) or ``held_out`` (evaluation only).
        preprocessing: resize and normalisation applied on device, differentiably.
        precision: ``bf16`` (autocast) or ``fp32`` (autocast off; Inception).
        weights: weight source.
        license: the weights' license.
        variant: ``full`` or ``tiny`` (a random-weight stand-in of the same classes).
        notes: quirks worth knowing (padding, pooling traps).
        seed: for encoders whose weights are drawn at random (or fitted from a seeded start),
            the seed they come from; ``None`` for pretrained or fixed weights. An encoder built
            with another seed carries it in its own spec, so the seed is part of every reference
            header (``encoder_spec``) and encoder fingerprint: references built from one seed
            never pass for another's.
    """

    name: str
    library: str
    model_id: str
    pooling: str
    dim: int
    split: Split
    preprocessing: Preprocessing
    precision: Precision = "bf16"
    weights: WeightSource = field(default_factory=WeightSource)
    license: str = "unknown"
    variant: Literal["full", "tiny"] = "full"
    notes: str = ""
    seed: int | None = None

    @property
    def resolution(self) -> int:
        return self.preprocessing.resolution

    def with_variant(self, variant: Literal["full", "tiny"], dim: int) -> EncoderSpec:
        """The same spec for another variant (tiny stand-ins have their own dim)."""
        return replace(self, variant=variant, dim=dim)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in reference headers and feature files."""
        return asdict(self)


@runtime_checkable
class Encoder(Protocol):
    """A frozen encoder: ``[0,1]`` RGB images at any size -> one feature vector per image.

    Implementations are ``nn.Module``s (the battery moves them with ``.to`` and may cast bf16
    encoders' weights) whose parameters are frozen (``requires_grad=False``).
    """

    spec: EncoderSpec

    def __call__(self, images: Tensor) -> Tensor:
        """Features of ``images``.

        Args:
            images: ``(B, 3, H, W)`` in ``[0, 1]``, any ``H, W``, float32 or the caller's
                autocast dtype, on the encoder's device. Resize and normalisation happen inside
                (``spec.preprocessing``), differentiably.

        Returns:
            ``(B, spec.dim)`` float32 features on the same device. Differentiable with respect
            to ``images`` (never wrapped in ``no_grad``: gradients must reach the generator);
            the spec's precision policy (bf16 autocast or fp32) is applied inside.
        """
        ...


# --------------------------------------------------------------------------------------------
# Kernels, reference sets, distances
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Kernel(Protocol):
    """A positive-definite kernel on feature rows with a fixed bandwidth."""

    name: str
    bandwidth: float

    def gram(self, x: Tensor, y: Tensor) -> Tensor:
        """``(n, m)`` matrix of ``k(x_i, y_j)``."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters, stored in reference headers."""
        ...


@runtime_checkable
class ReferenceSet(Protocol):
    """The frozen data side of one encoder's distance.

    A Nystrom reference (landmarks + coefficients + ``k_rr``), an exact pool, an RFF bank, or
    an ablation bank. ``distance`` returns the raw per-encoder loss ``L_e`` of generated
    features (for MMD: exact within-batch repulsion - 2 x attraction + ``k_rr``).
    """

    #: the registry name of the reference kind (``nystrom``, ``exact``, ...), stored in the header
    kind: str
    #: JSON-ready build record (encoder, kernel, bandwidth, sizes, seed, source fingerprint)
    header: dict[str, Any]

    @property
    def dim(self) -> int:
        """Feature dimension the reference was built for."""
        ...

    def distance(self, features: Tensor) -> Tensor:
        """Raw distance of generated features to the reference.

        Args:
            features: ``(N, dim)`` float32 features of the whole generated batch, on the
                reference's device (the trainer passes the all-gathered global batch).

        Returns:
            A 0-dim float tensor, differentiable with respect to ``features``.
        """
        ...

    def to(self, device: torch.device | str) -> ReferenceSet:
        """Move the reference's tensors to ``device``; returns self."""
        ...

    def save(self, path: str) -> None:
        """Write the reference (safetensors + JSON header) atomically."""
        ...


# --------------------------------------------------------------------------------------------
# Generators and conditions
# --------------------------------------------------------------------------------------------


@dataclass
class Conditions:
    """What a generator is conditioned on for one batch of ``B`` samples; opaque to the trainer.

    Attributes:
        inputs: whatever the generator's ``generate`` consumes, with ``B`` rows: a context tensor
            ``(B, L, D)``, a tuple of tensors (FLUX.1: T5 context and CLIP pooled vector), class
            ids ``(B,)`` int64, or ``None`` for unconditional models.
        caption_ids: ``(B,)`` int64 rows of the generator's prompt table (``sample_conditions``
            only). The joint image-text feature looks up the caption's text feature with them, so
            they index the same prompts file the text table was built from. ``None`` when the
            conditions come from no table (unconditional, or ``conditions_from_prompts``).
        captions: the ``B`` caption texts when known (PickScore, sample grids), else ``None``.
    """

    inputs: Any = None
    caption_ids: Tensor | None = None
    captions: list[str] | None = None

    def to(self, device: torch.device | str) -> Conditions:
        """The same conditions with every tensor (also inside tuples, lists, dicts) on ``device``."""
        import torch

        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.to(device)
            if isinstance(x, (tuple, list)):
                return type(x)(move(v) for v in x)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return x

        ids = self.caption_ids.to(device) if self.caption_ids is not None else None
        return Conditions(move(self.inputs), ids, self.captions)


@runtime_checkable
class Generator(Protocol):
    """A one-step generator: standard-normal noise (+ conditions) -> images in ``[0, 1]``.

    The trainer, ``rdm generate``, ``rdm eval`` and reference renders use only these methods;
    anything more (prompt encoding, a multi-step teacher, checkpointing, sizes for ``rdm plan``)
    is an optional capability of :mod:`rdm_core.capabilities`.

    Devices: ``build_generator`` moves :meth:`trainable_module` to the run's device and nothing
    else, so frozen parts (a VAE, text encoders) must follow the trainable module's device (and
    float64 dtype, for exactness runs) by themselves, e.g. on the first ``generate`` call.

    Precision: parameters of the trainable module stay float32 master weights (float64 in
    exactness runs). Under ``train.precision: bf16`` the caller wraps ``generate`` in bf16
    autocast; a generator may also force its own autocast (the diffusers generators'
    ``precision`` argument).
    """

    def noise_shape(self) -> tuple[int, ...]:
        """Per-sample noise shape (no batch axis).

        Callers draw ``torch.randn((B, *noise_shape()))`` on the run's device, float32 (float64
        in exactness runs), and pass it to :meth:`generate` unchanged.
        """
        ...

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """Draw ``n`` training conditions, using ``rng`` as the only source of randomness.

        ``rng`` is a dedicated ``torch.Generator`` (seeded from the run seed and rank by the
        trainer; CPU, or the render device in evaluation); the same ``rng`` state must give the
        same conditions. The result may live on any device: callers ``.to(device)`` it. An
        unconditional generator returns ``Conditions(inputs=None)``.
        """
        ...

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step sample.

        Args:
            noise: ``(B, *noise_shape())`` standard normal, on the trainable module's device.
            conditions: ``B`` rows, already on that device.

        Returns:
            ``(B, 3, H, W)`` images, or ``(B, 3, F, H, W)`` video, RGB in ``[0, 1]``, on the
            noise's device. Floating point: float32 (float64 for a float64 module), or the
            caller's autocast dtype when the last operation ran under it (consumers that need
            float32 call ``.float()``; encoders accept either). Differentiable with respect
            to the trainable module's parameters: never wrap the forward in ``no_grad``. A pure
            function of ``noise``, ``conditions``, the parameters and torch's global RNG state:
            GradCache replays every chunk from the same inputs and RNG state and needs the same
            output.
        """
        ...

    def trainable_module(self) -> nn.Module:
        """The module whose parameters are trained.

        The trainer hands its parameters to the optimizer, shards it with FSDP, switches it
        between ``train()`` and ``eval()`` and saves/loads its ``state_dict`` in run checkpoints.
        Frozen parts must not be trainable parameters of it (``requires_grad=False`` or kept
        outside).
        """
        ...

    def load_weights(self, path: str, format: str = "auto") -> None:
        """Load third-party or released weights into the trainable module, strictly.

        ``format`` is generator-specific (``auto`` detects it from the file). A file that does
        not match raises :class:`~rdm_core.errors.ArtifactError`; a missing one
        :class:`~rdm_core.errors.WeightsNotFoundError`.
        """
        ...

    def save_weights(self, path: str, format: str = "rdm") -> None:
        """Write the trainable module's weights (safetensors, atomically) in ``format``."""
        ...


def as_image_batch(x: Tensor) -> Tensor:
    """``(B,3,H,W)`` unchanged; video ``(B,3,F,H,W)`` -> ``(B*F,3,H,W)`` frames, sample-major."""
    if x.dim() == 4:
        return x
    if x.dim() == 5:
        b, c, f, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    raise ValueError(f"expected (B,3,H,W) images or (B,3,F,H,W) video, got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------


@dataclass
class ImageBatch:
    """A batch read from an image source: ``images`` in ``[0,1]`` (B,3,R,R), float32."""

    images: Tensor
    keys: list[str]
    captions: list[str] | None = None


@runtime_checkable
class ImageSource(Protocol):
    """A deterministic, indexable collection of images (folder, JSONL, teacher renders, digits).

    Optional capabilities (:mod:`rdm_core.capabilities`): ``captions`` without decoding
    (:class:`~rdm_core.capabilities.CaptionedSource`), a cheap change token
    (:class:`~rdm_core.capabilities.StatTokenSource`), a manifest description
    (:class:`~rdm_core.capabilities.DescribedSource`).
    """

    def __len__(self) -> int:
        """Number of items; indices are ``0 .. len - 1``."""
        ...

    def key(self, index: int) -> str:
        """A stable identity of item ``index`` (a relative path, a row id), unique in the source."""
        ...

    def fingerprint(self, index: int) -> str:
        """Changes whenever item ``index``'s content changes (manifests detect edits with it)."""
        ...

    def read(self, indices: Sequence[int]) -> ImageBatch:
        """Items ``indices`` in order: ``(len(indices), 3, R, R)`` float32 images in ``[0, 1]``
        on the CPU, their keys, and their captions (``None`` when the source has none)."""
        ...


@runtime_checkable
class PromptSource(Protocol):
    """An ordered list of prompts (captions, GenEval prompts)."""

    def prompts(self) -> list[str]: ...


# --------------------------------------------------------------------------------------------
# Objectives: the global batch's features -> one scalar loss
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the core knows about a registered objective without importing it.

    Each reference is a class/function or a ``"module:attr"`` string imported on first use, so
    registering stays cheap.

    Attributes:
        settings: the dataclass of the objective's recipe section (every key of ``objective:``
            except ``name``); the recipe loader merges the section into it in struct mode, so a
            misspelled key fails in one line naming the valid ones. ``None``: no settings.
        check: ``check(recipe) -> list[str]``, run by ``rdm validate`` after the core checks:
            names and values only, never building anything; raises ``RecipeError`` on a problem
            and returns a description of each passed check.
        plan: ``plan(recipe, feature_dims) -> ObjectiveCost`` for ``rdm plan`` (no references
            are loaded).
    """

    settings: type | str | None = None
    check: Callable[[Any], list[str]] | str | None = None
    plan: Callable[[Any, Mapping[str, int]], ObjectiveCost] | str | None = None


@dataclass
class ObjectiveCost:
    """An objective's own share of one step's cost, as ``rdm plan`` reports it.

    Attributes:
        feature_dims: per training encoder, the width of the features the loss sees (the
            encoder's dim plus whatever the objective appends, e.g. a text block).
        memory: named byte counts of the loss's working memory on the global batch.
        flops: FLOPs of the loss and its gradient with respect to the features.
    """

    feature_dims: dict[str, int]
    memory: dict[str, float] = field(default_factory=dict)
    flops: float = 0.0


@dataclass(frozen=True)
class ObjectiveContext:
    """What a trainer hands an objective factory (``factory(context) -> Objective``).

    Attributes:
        recipe: the loaded recipe; ``recipe.objective`` is the objective's validated section.
        encoders: the built training encoders (name -> module with ``.spec``), in recipe order.
        device: where the loss runs.
        rollout: the global batch N of one step (every rank's rows together).
        recipe_ref: how the user named the recipe, for "rebuild with `rdm ... RECIPE`" hints.
    """

    recipe: Any
    encoders: Mapping[str, Encoder]
    device: Any
    rollout: int
    recipe_ref: str = "RECIPE"

    @property
    def settings(self) -> Any:
        """The objective's recipe section (``recipe.objective``)."""
        return self.recipe.objective


@runtime_checkable
class Objective(Protocol):
    """Turns the global batch's features into one scalar loss: all a trainer needs to know.

    ``loss`` is computed identically on every rank from the gathered features of all ranks, so
    it must be deterministic given them (draw any randomness from generators seeded by the step,
    see :class:`~rdm_core.capabilities.SteppedObjective`). Optional capabilities
    (:mod:`rdm_core.capabilities`): being told the step (``SteppedObjective``), state saved in
    checkpoints (``StatefulObjective``), extending each chunk's features (``FeatureCoupling``).
    """

    def loss(self, features: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Any]]:
        """``{encoder: (N, d)}`` global features -> ``(scalar loss, logs)``.

        ``logs`` is JSON-ready and goes into the step's metrics row. By convention its ``raw``
        entry, when present, maps each loss term's name to its float value: the progress bar,
        ``loss.png`` and the closing line of ``rdm train`` show it.
        """
        ...


# --------------------------------------------------------------------------------------------
# Trainers and metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerOptions:
    """How ``rdm train`` was asked to run, passed to the trainer factory with the recipe.

    Attributes:
        recipe_ref: how the user named the recipe, quoted in "rebuild with ..." hints.
        show_progress: draw a progress bar (rank 0 only).
        step_callbacks: called as ``callback(step)`` once a step is complete (after its
            checkpoint and samples are written). Nothing in rdm installs one; tests use it, e.g.
            to SIGKILL a run between checkpoints.
    """

    recipe_ref: str = "RECIPE"
    show_progress: bool = True
    step_callbacks: tuple[Callable[[int], None], ...] = ()


@runtime_checkable
class Trainer(Protocol):
    """Runs an assembled recipe; owns the run directory, checkpoints and resume.

    Built by ``factory(recipe, options)`` with :class:`TrainerOptions`.
    """

    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train to the recipe's end; returns a JSON-ready summary (``run_dir``, ``step``, ...)."""
        ...


@dataclass
class MetricResult:
    """One metric's outcome: the headline ``value`` and per-item (e.g. per-encoder) values."""

    name: str
    value: float
    per_item: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """An off-objective evaluation. Implementations never import training code."""

    name: str

    def evaluate(self, **inputs: Any) -> MetricResult:
        """Compute the metric from named inputs (features, renders, ...) chosen by the metric."""
        ...


def iter_chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n)`` in chunks of ``size``."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    for start in range(0, n, size):
        yield start, min(start + size, n)


# The optional capabilities have their own module; they can be imported from here too.
from rdm_core.capabilities import *  # noqa: E402, F403
