"""The encoder contract: what a frozen encoder declares (``EncoderSpec``) and how it is called.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

Split = Literal["train", "held_out"]
Precision = Literal["bf16", "fp32"]


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
