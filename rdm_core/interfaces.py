"""The contracts every plugin implements.

Plain protocols and frozen dataclasses: a plugin satisfies them structurally, it never has to
inherit from rdm. Torch is imported only for type checking so that importing this module (and
therefore registering plugins) stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """A frozen encoder: ``[0,1]`` NCHW images at any size -> ``(B, dim)`` float32 features.

    Implementations are ``nn.Module``s with frozen parameters; ``forward`` is differentiable with
    respect to the images (never wrapped in ``no_grad``) and applies the spec's precision policy.
    """

    spec: EncoderSpec

    def __call__(self, images: Tensor) -> Tensor: ...


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

    kind: str
    header: dict[str, Any]

    @property
    def dim(self) -> int: ...

    def distance(self, features: Tensor) -> Tensor:
        """Raw scalar distance between generated ``features`` (N, dim) and the reference."""
        ...

    def to(self, device: torch.device | str) -> ReferenceSet: ...

    def save(self, path: str) -> None: ...


# --------------------------------------------------------------------------------------------
# Generators and conditions
# --------------------------------------------------------------------------------------------


@dataclass
class Conditions:
    """What a generator is conditioned on for one batch; opaque to the trainer.

    ``inputs`` is whatever the generator's ``generate`` consumes (a context tensor, a tuple, class
    ids, or ``None`` for unconditional models). ``caption_ids`` index the prompt pool (rows of
    the text-feature table for the joint image-text feature); ``captions`` are the texts when
    known.
    """

    inputs: Any = None
    caption_ids: Tensor | None = None
    captions: list[str] | None = None

    def to(self, device: torch.device | str) -> Conditions:
        def move(x: Any) -> Any:
            if hasattr(x, "to"):
                return x.to(device)
            if isinstance(x, tuple):
                return tuple(move(v) for v in x)
            return x

        ids = self.caption_ids.to(device) if self.caption_ids is not None else None
        return Conditions(move(self.inputs), ids, self.captions)


@runtime_checkable
class Generator(Protocol):
    """A one-step generator: noise (+ conditions) -> ``[0,1]`` images, differentiably.

    Video generators return ``(B, 3, F, H, W)``; :func:`as_image_batch` flattens frames for
    image encoders.
    """

    def noise_shape(self) -> tuple[int, ...]:
        """Per-sample noise shape; noise is standard normal."""
        ...

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """Draw ``n`` training conditions with a dedicated generator (seed + rank)."""
        ...

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step sample in ``[0,1]``."""
        ...

    def trainable_module(self) -> nn.Module:
        """The module whose parameters are trained (optimizer, FSDP, checkpoints)."""
        ...

    def load_weights(self, path: str, format: str = "auto") -> None: ...

    def save_weights(self, path: str, format: str = "rdm") -> None: ...


@runtime_checkable
class TeacherSampler(Protocol):
    """Optional generator capability: multi-step sampling without gradients (reference renders)."""

    def teacher_sample(self, noise: Tensor, conditions: Conditions, steps: int) -> Tensor: ...


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

    ``key(i)`` identifies item ``i`` stably (a relative path, a row id); ``fingerprint(i)``
    changes when the item's content changes (used by manifests to detect edits).
    """

    def __len__(self) -> int: ...

    def key(self, index: int) -> str: ...

    def fingerprint(self, index: int) -> str: ...

    def read(self, indices: Sequence[int]) -> ImageBatch: ...


@runtime_checkable
class PromptSource(Protocol):
    """An ordered list of prompts (captions, GenEval prompts)."""

    def prompts(self) -> list[str]: ...


# --------------------------------------------------------------------------------------------
# Trainers and metrics
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Trainer(Protocol):
    """Runs an assembled recipe; owns the run directory, checkpoints and resume."""

    def run(self, *, resume: bool = False) -> dict[str, Any]: ...


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

    def evaluate(self, **inputs: Any) -> MetricResult: ...


def iter_chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n)`` in chunks of ``size``."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    for start in range(0, n, size):
        yield start, min(start + size, n)
