"""What every reference-set kind shares: the build call, save/load, runtime options, devices.

A reference file is a safetensors file whose JSON header (``rdm`` metadata key, written by
:func:`rdm_core.artifacts.save_tensors`) records how it was built; the header and the
``expect`` checks on it are :mod:`rdm_mmd.reference_header`, references that draw per step
:mod:`rdm_mmd.stepped_reference`, and ``docs/references.md`` lists the keys and tensors of every
kind.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.interfaces import Kernel
from rdm_core.numerics import median_bandwidth
from rdm_mmd.kernels import KERNELS, kernel_from_description
from rdm_mmd.reference_header import check_expect, make_header


def resolve_kernel(
    kernel: Any,
    features: Tensor,
    *,
    bandwidth_scale: float = 1.0,
    bandwidth_subsample: int = 10000,
    seed: int = 0,
    kernel_args: Mapping[str, Any] | None = None,
) -> Any:
    """A kernel object as is; a kernel name -> that kernel at the median bandwidth x scale."""
    if not isinstance(kernel, str):
        if not isinstance(kernel, Kernel):
            raise RecipeError(
                f"{kernel!r} is not a kernel (needs name, bandwidth, gram() and describe()).",
                "pass a kernel name such as 'gaussian' or a Kernel object",
            )
        return kernel
    sigma = median_bandwidth(features, scale=bandwidth_scale, subsample=bandwidth_subsample, seed=seed)
    if kernel in KERNELS:
        return KERNELS[kernel](bandwidth=sigma, **dict(kernel_args or {}))
    from rdm_core.plugins import registry

    return registry("kernels").create(kernel, bandwidth=sigma, **dict(kernel_args or {}))


def check_features(features: Tensor, what: str = "reference features") -> None:
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] < 2:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ShapeError(
            f"{what} must be an (n >= 2, dim) tensor, got {shape}.", "pass pooled encoder features, one row per image"
        )
    if not torch.isfinite(features).all():
        from rdm_core.errors import NonFiniteError

        raise NonFiniteError(
            f"{what} contain NaN or Inf.", "re-extract the features (check the encoder precision policy and the images)"
        )


@dataclass
class Fitted:
    """What a reference kind computes from a feature pool; :meth:`ReferenceBase.build` adds the rest.

    Attributes:
        tensors: the tensors to store (``tensor_names``).
        header: the kind's own header keys (the shared ones are written by ``build``).
        k_rr: the reference kernel mean, for kinds that have one.
        landmarks: the landmark count actually used, for kinds that have landmarks.
        options: runtime options the build implies (e.g. the ``memory_budget`` it was built with).
    """

    tensors: dict[str, Tensor]
    header: dict[str, Any] = field(default_factory=dict)
    k_rr: float | None = None
    landmarks: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


class ReferenceBase:
    """Shared machinery; subclasses set ``kind`` and ``tensor_names`` and implement :meth:`fit`
    and ``distance``.

    Attributes:
        header: the JSON header (see ``docs/references.md``).
        tensors: the stored tensors by name (on ``self.device``).
    """

    kind: ClassVar[str] = "base"
    tensor_names: ClassVar[tuple[str, ...]] = ()
    #: kinds compared through a kernel get one (a kernel name is resolved at the median bandwidth
    #: x scale); kernel-free kinds (Frechet, sliced Wasserstein) ignore the kernel arguments
    uses_kernel: ClassVar[bool] = True

    def __init__(self, tensors: Mapping[str, Tensor], header: Mapping[str, Any], **options: Any) -> None:
        missing = [k for k in self.tensor_names if k not in tensors]
        if missing:
            raise ArtifactError(
                f"{self.kind} reference is missing tensor(s) {', '.join(missing)}.",
                "rebuild it with `rdm reference build`",
            )
        self.tensors: dict[str, Tensor] = dict(tensors)
        self.header: dict[str, Any] = dict(header)
        self.kernel = kernel_from_description(self.header["kernel"]) if self.header.get("kernel") else None
        self.options: dict[str, Any] = {}
        self.configure(**options)
        self._validate()

    # -- building -----------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def build(
        cls,
        features: Tensor,
        kernel: Any = "gaussian",
        *,
        landmarks: int | None = None,
        seed: int = 0,
        encoder: Any = None,
        bandwidth_scale: float = 1.0,
        bandwidth_subsample: int = 10000,
        kernel_args: Mapping[str, Any] | None = None,
        source_fingerprint: str | None = None,
        joint: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Build a reference of this kind from a feature pool.

        Every kind takes this one call, so a recipe (or ``rdm reference build --kind``) builds any
        of them: the features are checked, a kernel name becomes that kernel at
        ``median_bandwidth(features) x bandwidth_scale``, the kind's :meth:`fit` computes its
        tensors, and the header records how (encoder, kernel and bandwidth, seed, ``n``, source
        fingerprint, joint settings and the kind's own keys).

        Args:
            features: ``(n, d)`` reference pool (any float dtype).
            kernel: a Kernel, or a kernel name (ignored by kernel-free kinds).
            landmarks: M, for kinds with landmarks (ignored by the others).
            seed: seeds every random choice of the build (subsamples, k-means, random features).
            encoder: EncoderSpec, its dict, or a name (stored in the header).
            bandwidth_scale: recorded in the header and applied when ``kernel`` is a name.
            bandwidth_subsample: rows of the median heuristic's seeded subsample.
            kernel_args: extra arguments of a named kernel (e.g. multiscale ``scales``).
            source_fingerprint: identity of the source images (default: hash of ``features``).
            joint: ``{beta, s_txt, d_img, d_txt}`` for joint image-text features.
            options: the kind's build options (keyword arguments of its :meth:`fit`), then its
                runtime options (:meth:`runtime_options`); any other name is refused.
        """
        check_features(features)
        kern = None
        if cls.uses_kernel:
            kern = resolve_kernel(
                kernel,
                features,
                bandwidth_scale=bandwidth_scale,
                bandwidth_subsample=bandwidth_subsample,
                seed=seed,
                kernel_args=kernel_args,
            )
        own = cls.build_options()
        fit_args = {k: options.pop(k) for k in list(options) if k in own}
        if landmarks is not None and "landmarks" in own:
            fit_args["landmarks"] = landmarks
        fitted = cls.fit(features, kern, seed=int(seed), **fit_args)
        header = make_header(
            cls.kind,
            features,
            kern,
            encoder=encoder,
            bandwidth_scale=bandwidth_scale if kern is not None else None,
            landmarks=fitted.landmarks,
            seed=seed,
            source_fingerprint=source_fingerprint,
            k_rr=fitted.k_rr,
            joint=joint,
            extra=fitted.header,
        )
        return cls(fitted.tensors, header, **{**fitted.options, **options})

    @classmethod
    def fit(cls, features: Tensor, kernel: Any, *, seed: int) -> Fitted:  # pragma: no cover - abstract
        """The kind's tensors and header keys for a checked pool (``kernel`` is resolved, or
        ``None`` for kernel-free kinds). Its keyword-only arguments are the kind's build options."""
        raise NotImplementedError

    @classmethod
    def build_options(cls) -> tuple[str, ...]:
        """The kind's own build options: the keyword-only arguments of its :meth:`fit`."""
        params = inspect.signature(cls.fit).parameters
        return tuple(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "seed")

    # -- subclass hooks -----------------------------------------------------------------------
    def configure(self, **options: Any) -> ReferenceBase:
        """Set runtime options (not stored in the file), e.g. ``gen_chunk``, ``memory_budget``."""
        unknown = [k for k in options if k not in self.runtime_options()]
        if unknown:
            known = [*self.build_options(), *self.runtime_options()]
            raise RecipeError(
                f"{self.kind} reference has no option(s) {', '.join(unknown)}.",
                f"use one of: {', '.join(known) or '(none)'}",
            )
        self.options.update(options)
        return self

    @classmethod
    def runtime_options(cls) -> tuple[str, ...]:
        return ()

    def _validate(self) -> None:
        for name in self.tensor_names:
            t = self.tensors[name]
            if not torch.isfinite(t).all():
                raise ArtifactError(
                    f"{self.kind} reference tensor {name!r} contains NaN or Inf.",
                    "rebuild it with `rdm reference build`",
                )

    # -- ReferenceSet protocol ----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.header["dim"])

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def distance(self, features: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_dim(self, features: Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ShapeError(
                f"{self.kind} reference for encoder {self.header.get('encoder')!r} has dim {self.dim}, "
                f"got features of shape {tuple(features.shape)}.",
                "use the reference built for this encoder (`rdm reference build RECIPE --encoders NAME`)",
            )

    def to(self, device: torch.device | str) -> ReferenceBase:
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    def save(self, path: str | Path) -> None:
        save_tensors(path, self.tensors, self.header)

    @classmethod
    def load(
        cls,
        path: str | Path,
        expect: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> ReferenceBase:
        """Load a reference file, checking its kind and the ``expect``-ed header values.

        Raises:
            ArtifactError: missing, truncated or corrupt file.
            ReferenceMismatchError: another kind, or a header value that differs from ``expect``.
        """
        tensors, header = load_tensors(path, device=str(device))
        if not header.get("kind"):
            raise ArtifactError(
                f"{path} has no reference-set header (no 'kind'); it is not an rdm reference set.",
                "build one with `rdm reference build`",
            )
        if header.get("kind") != cls.kind:
            raise ReferenceMismatchError(
                f"{path} is a {header.get('kind')!r} reference, not {cls.kind!r}.",
                f"set objective.distance.reference: {header.get('kind')} or rebuild with --kind {cls.kind}",
            )
        check_expect(header, expect, path)
        return cls(tensors, header, **options)

    def __repr__(self) -> str:
        h = self.header
        return f"{type(self).__name__}(encoder={h.get('encoder')!r}, dim={self.dim}, n={h.get('n')})"
