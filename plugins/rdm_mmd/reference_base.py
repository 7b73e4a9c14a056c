"""What every reference-set kind shares: the build call, the header, ``expect`` checks, save/load, devices.

A reference file is a safetensors file whose JSON header (``rdm`` metadata key, written by
:func:`rdm_core.artifacts.save_tensors`) records how it was built; ``docs/references.md`` lists
the keys and tensors of every kind.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from rdm_core import __version__ as rdm_version
from rdm_core.artifacts import fingerprint_tensor, load_tensors, save_tensors
from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.interfaces import EncoderSpec, Kernel
from rdm_core.numerics import median_bandwidth
from rdm_mmd.kernels import KERNELS, kernel_from_description

JOINT_KEYS = ("beta", "s_txt", "d_img", "d_txt")


def encoder_fields(encoder: Any) -> tuple[str | None, dict[str, Any] | None]:
    """``(name, spec dict or None)`` from an EncoderSpec, its dict, a name, or None."""
    if encoder is None:
        return None, None
    if isinstance(encoder, str):
        return encoder, None
    if isinstance(encoder, EncoderSpec):
        spec = encoder.to_dict()
        return spec.get("name"), spec
    if isinstance(encoder, Mapping):
        spec = dict(encoder)
        return spec.get("name"), spec
    raise RecipeError(
        f"encoder must be a name, an EncoderSpec or its dict, got {type(encoder).__name__}.",
        "pass encoder='dinov2' or encoder=spec",
    )


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


def make_header(
    kind: str,
    features: Tensor,
    kernel: Any,
    *,
    encoder: Any = None,
    bandwidth_scale: float | None = None,
    landmarks: int | None = None,
    seed: int = 0,
    source_fingerprint: str | None = None,
    k_rr: float | None = None,
    joint: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON header shared by every kind (kind-specific keys go in ``extra``)."""
    name, spec = encoder_fields(encoder)
    dim = int(features.shape[1])
    header: dict[str, Any] = {
        "kind": kind,
        "encoder": name,
        "encoder_spec": spec,
        "dim": dim,
        "kernel": kernel.describe() if kernel is not None else None,
        "bandwidth": float(kernel.bandwidth) if kernel is not None else None,
        "bandwidth_scale": None if bandwidth_scale is None else float(bandwidth_scale),
        "landmarks": None if landmarks is None else int(landmarks),
        "seed": int(seed),
        "n": int(features.shape[0]),
        "source_fingerprint": source_fingerprint or fingerprint_tensor(features),
        "rdm_version": rdm_version,
        "k_rr": None if k_rr is None else float(k_rr),
        "joint": joint is not None,
    }
    for key in JOINT_KEYS:
        header[key] = None
    if joint is not None:
        missing = [k for k in JOINT_KEYS if joint.get(k) is None]
        if missing:
            raise RecipeError(
                f"joint reference options miss {', '.join(missing)}.",
                "pass joint={'beta': .., 's_txt': .., 'd_img': .., 'd_txt': ..}",
            )
        if int(joint["d_img"]) + int(joint["d_txt"]) != dim:
            raise ShapeError(
                f"joint features have dim {dim} but d_img + d_txt = {joint['d_img']} + {joint['d_txt']}.",
                "build joint features with rdm_mmd.joint.joint_features(phi, tau, beta)",
            )
        header.update(
            {
                "beta": float(joint["beta"]),
                "s_txt": float(joint["s_txt"]),
                "d_img": int(joint["d_img"]),
                "d_txt": int(joint["d_txt"]),
            }
        )
    header.update(dict(extra or {}))
    return header


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(have) == bool(want)
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(float(have), float(want), rel_tol=1e-6, abs_tol=1e-12)
    return have == want


def _kernel_matches(have: Any, want: Any) -> bool:
    if have is None:
        return want is None
    if isinstance(want, str):
        return have.get("name") == want
    if isinstance(want, Kernel):
        want = want.describe()
    if isinstance(want, Mapping):
        return all(_same(have.get(k), v) for k, v in want.items())
    return False


def check_expect(header: Mapping[str, Any], expect: Mapping[str, Any] | None, path: str | Path) -> None:
    """Refuse a reference whose header differs from what the caller expects.

    Raises:
        ReferenceMismatchError: naming the key, both values and the rebuild command.
    """
    if not expect:
        return
    encoder = expect.get("encoder") or header.get("encoder") or "NAME"
    fix = f"rebuild it: `rdm reference build RECIPE --encoders {encoder}` (or point the recipe at the right file)"
    for key, want in expect.items():
        if want is None:
            continue
        have = header.get(key)
        ok = _kernel_matches(have, want) if key == "kernel" else _same(have, want)
        if not ok:
            shown = (
                have.get("name") if key == "kernel" and isinstance(have, Mapping) and isinstance(want, str) else have
            )
            raise ReferenceMismatchError(f"{path}: reference set has {key}={shown!r} but {want!r} is expected.", fix)


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


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for per-step draws: identical on every rank for the same (seed, step)."""
    # Mix (seed, step) so consecutive steps of nearby seeds do not share streams.
    return torch.Generator().manual_seed((int(seed) * 0x9E3779B1 + int(step) * 0x85EBCA77 + 1) % (2**63 - 1))


class SteppedReference(ReferenceBase):
    """A reference that draws fresh real rows (or projections) per call, seeded by a step counter.

    Every rank must draw the same rows: the trainer either calls ``set_step(step)`` before each
    distance, or relies on the internal counter, which advances once per ``distance`` call and is
    identical across ranks as long as every rank calls ``distance`` the same number of times.
    """

    def __init__(self, tensors: Mapping[str, Tensor], header: Mapping[str, Any], **options: Any) -> None:
        self.step = 0
        super().__init__(tensors, header, **options)

    def set_step(self, step: int) -> None:
        """Draw the next sample for optimizer step ``step`` (resume-safe)."""
        self.step = int(step)

    def _next_generator(self) -> torch.Generator:
        gen = step_generator(int(self.header.get("seed", 0)), self.step)
        self.step += 1
        return gen

    def real_sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` pool rows drawn with ``gen``: without replacement when the pool is large enough."""
        pool = self.tensors["pool"]
        size = pool.shape[0]
        idx = torch.randperm(size, generator=gen)[:n] if n <= size else torch.randint(size, (n,), generator=gen)
        return pool.index_select(0, idx.to(pool.device))
