"""Output contracts of plugins, checked once, where plugin objects enter the framework.

Every generator and encoder is built by :meth:`rdm_core.registry.Registry.create`; the host hands
each new object to :func:`guard`, which re-classes it as a checking subclass of its own class
(same name, same ``isinstance`` answers, same state dict; deep copies stay checked), so every
caller (training, reference building, evaluation, ``rdm generate``, teacher renders) gets the
same checks without having to remember them:

* **generators** (``generate`` and ``teacher_sample``): the images are a floating tensor of shape
  ``(B, 3, H, W)`` or ``(B, 3, F, H, W)`` with ``B`` the number of noise rows. Values must lie in
  ``[0, 1]``: checked, with finiteness, on the first batch an object returns (one reduction and
  one host sync), then no more, to keep the training step free of synchronisation.
* **encoders** (``forward``, or ``__call__`` for non-modules): ``(B, dim)`` floating features for
  ``B`` images, ``dim`` equal to the dimension the encoder's spec declares. Shape checks cost
  nothing, so every batch is checked.

Each failure is one :class:`ContractError` line naming the component and its plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdm_core.capabilities import TeacherSampler
from rdm_core.errors import ContractError
from rdm_core.interfaces import Encoder, EncoderSpec

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.registry import Entry

RANGE_TOLERANCE = 1e-3  # rounding slack around [0, 1]; an unclamped or x255 output is far outside
_FIRST_DONE = "_rdm_first_batch_checked"

_SUBCLASSES: dict[tuple[type, str], type] = {}
_CHECKED: set[type] = set()


def _who(entry: Entry) -> str:
    return f"{entry.kind} {entry.name!r} (plugin {entry.plugin!r})"


def _rows(x: Any) -> int | None:
    """The batch size of a tensor argument (``None`` for anything else)."""
    import torch

    return int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() > 0 else None


def check_images(images: Any, batch: int | None, who: str, *, check_values: bool) -> None:
    """The generator contract on one batch (see the module docstring).

    Raises:
        ContractError: naming ``who``, what came back and what is expected.
    """
    import torch

    expected = "floating images of shape (B, 3, H, W) or (B, 3, F, H, W) with values in [0, 1]"
    fix = "fix the generator's output (e.g. repeat a grey channel 3 times, clamp, map [-1, 1] with (x + 1) / 2)"
    if not isinstance(images, torch.Tensor):
        raise ContractError(f"{who} returned a {type(images).__name__}, not a tensor; expected {expected}.", fix)
    if images.dim() not in (4, 5) or images.shape[1] != 3:
        raise ContractError(f"{who} returned images of shape {tuple(images.shape)}; expected {expected}.", fix)
    if batch is not None and images.shape[0] != batch:
        raise ContractError(f"{who} returned {images.shape[0]} images for {batch} noise rows.", fix)
    if not images.is_floating_point():
        raise ContractError(f"{who} returned {images.dtype} images; expected {expected}.", fix)
    if check_values:
        with torch.no_grad():
            low, high = torch.aminmax(images.detach().float())
            finite = bool(torch.isfinite(images.detach()).all())
        if not finite:
            raise ContractError(
                f"{who} returned NaN or Inf pixels on its first batch.", "check the generator's weights"
            )
        if float(low) < -RANGE_TOLERANCE or float(high) > 1 + RANGE_TOLERANCE:
            raise ContractError(
                f"{who} returned pixel values in [{float(low):.4g}, {float(high):.4g}]; expected {expected}.", fix
            )


def check_features(features: Any, images: Any, dim: int, who: str) -> None:
    """The encoder contract on one batch: ``(B, dim)`` floating features."""
    import torch

    fix = "make the encoder's output match its EncoderSpec.dim (tiny variants declare their own: spec.with_variant)"
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise ContractError(f"{who} returned {type(features).__name__} features; expected a floating tensor.", fix)
    batch = _rows(images)
    if features.dim() != 2 or (batch is not None and features.shape[0] != batch):
        raise ContractError(
            f"{who} returned features of shape {tuple(features.shape)} for {batch} images; expected (B, {dim}).", fix
        )
    if features.shape[1] != dim:
        raise ContractError(f"{who} declares dim {dim} in its spec but returned {features.shape[1]}-d features.", fix)


def _first_batch(obj: Any) -> bool:
    """True once per object: whether this is its first checked batch."""
    try:
        state = vars(obj)
    except TypeError:  # no instance dict (slots): check every batch instead
        return True
    first = not state.get(_FIRST_DONE, False)
    state[_FIRST_DONE] = True
    return first


def _generator_methods(cls: type, who: str) -> dict[str, Any]:
    methods: dict[str, Any] = {}

    def generate(self: Any, noise: Any, *args: Any, **kwargs: Any) -> Any:
        images = cls.generate(self, noise, *args, **kwargs)
        check_images(images, _rows(noise), who, check_values=_first_batch(self))
        return images

    methods["generate"] = generate
    if issubclass(cls, TeacherSampler):

        def teacher_sample(self: Any, noise: Any, *args: Any, **kwargs: Any) -> Any:
            images = cls.teacher_sample(self, noise, *args, **kwargs)
            check_images(images, _rows(noise), f"{who} (teacher)", check_values=True)
            return images

        methods["teacher_sample"] = teacher_sample
    return methods


def _encoder_methods(cls: type, who: str) -> dict[str, Any]:
    from torch import nn

    name = "forward" if issubclass(cls, nn.Module) else "__call__"
    original = cls.forward if name == "forward" else cls.__call__

    def call(self: Any, images: Any, *args: Any, **kwargs: Any) -> Any:
        features = original(self, images, *args, **kwargs)
        check_features(features, images, int(self.spec.dim), who)
        return features

    return {name: call}


def _checked_subclass(cls: type, kind: str, who: str) -> type:
    key = (cls, who)
    if key not in _SUBCLASSES:
        methods = _generator_methods(cls, who) if kind == "generators" else _encoder_methods(cls, who)
        namespace = {
            **methods,
            "__slots__": (),
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        }
        _SUBCLASSES[key] = type(cls.__name__, (cls,), namespace)
        _CHECKED.add(_SUBCLASSES[key])
    return _SUBCLASSES[key]


def guard(kind: str, entry: Entry, obj: Any) -> Any:
    """Make ``obj`` (just built from ``entry``) check its outputs; other kinds pass unchanged.

    Raises:
        ContractError: an encoder without a spec, or whose full-size spec disagrees with the
            registered one.
    """
    if kind not in ("generators", "encoders") or type(obj) in _CHECKED:
        return obj
    who = _who(entry)
    if kind == "encoders":
        if not isinstance(obj, Encoder) or not isinstance(obj.spec, EncoderSpec):
            raise ContractError(
                f"{who} built a {type(obj).__name__} without an EncoderSpec in .spec.",
                "set self.spec = an EncoderSpec in the encoder (see docs/plugins.md)",
            )
        declared = entry.spec
        if obj.spec.variant == "full" and isinstance(declared, EncoderSpec) and declared.dim != obj.spec.dim:
            raise ContractError(
                f"{who} is registered with dim {declared.dim} but built an encoder whose spec says {obj.spec.dim}.",
                "register the spec the encoder carries",
            )
    try:
        obj.__class__ = _checked_subclass(type(obj), kind, who)
    except TypeError:  # a class that cannot be re-classed (C extension types): left unchecked
        return obj
    return obj
