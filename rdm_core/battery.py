"""The battery facade: several frozen encoders called as one, for training, references and eval.

One object maps images to ``{encoder name: (B, d) float32}`` in a fixed order, so reference
building, training and evaluation can never drift apart in resolution or pooling.

* ``battery(images, only=None)`` is differentiable (training; GradCache chunks outside).
* ``battery.extract(source, cache_path=...)`` runs without gradients in chunks, shows progress,
  checks every feature is finite and can cache the features in a safetensors file whose header
  records each encoder's spec, so a changed encoder never reuses stale features.

This module imports torch only; encoders come from the registry (any plugin) or are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.artifacts import fingerprint_parts, fingerprint_tensor, load_tensors, read_meta, save_tensors
from rdm_core.errors import ArtifactError, NonFiniteError, RdmError, ShapeError, UnknownNameError
from rdm_core.interfaces import Encoder, ImageBatch, ImageSource, as_image_batch, iter_chunks

FEATURE_CACHE_KIND = "battery_features"


def _spec_json(encoder: Encoder) -> dict[str, Any]:
    """The encoder's spec as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(encoder.spec.to_dict()))


def _check_encoder(name: str, encoder: Any) -> None:
    """Refuse anything that is not an ``nn.Module`` implementing :class:`Encoder` (a ``.spec``)."""
    if not (isinstance(encoder, nn.Module) and isinstance(encoder, Encoder)):
        raise RdmError(
            f"encoder {name!r} is a {type(encoder).__name__}, not an nn.Module with a .spec.",
            "an encoder factory must return an nn.Module with an EncoderSpec as .spec (rdm_core.interfaces.Encoder)",
        )


class Battery:
    """Frozen encoders called together.

    Args:
        encoders: ``name -> encoder`` in the order features should come out (panel order).
        chunk_size: images per forward pass in :meth:`extract`.
        device: where encoders run; ``None`` keeps them where they are (device of the first
            parameter, else CPU).
        bf16_weights: cast the weights of every bf16-autocast encoder to bf16 (``battery_bf16``:
            about half the memory; features barely move since they already run under autocast).
            fp32 encoders (Inception) are never cast.
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        chunk_size: int = 64,
        device: torch.device | str | None = None,
        bf16_weights: bool = False,
    ) -> None:
        if not encoders:
            raise ValueError("a battery needs at least one encoder")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        for name, enc in encoders.items():
            _check_encoder(name, enc)
        self.encoders: dict[str, Encoder] = dict(encoders)
        self.chunk_size = int(chunk_size)
        if device is None:
            first = next(iter(self.encoders.values()))
            params = list(first.parameters())
            device = params[0].device if params else "cpu"
        self.to(device)
        if bf16_weights:
            for enc in self.encoders.values():
                if enc.spec.precision == "bf16":
                    enc.to(torch.bfloat16)

    # -- construction helpers -----------------------------------------------------------------
    @classmethod
    def build(
        cls,
        names: Sequence[str],
        *,
        variant: str = "full",
        weights: Mapping[str, str] | None = None,
        args: Mapping[str, Mapping[str, Any]] | None = None,
        chunk_size: int = 64,
        device: torch.device | str = "cpu",
        bf16_weights: bool = False,
    ) -> Battery:
        """Build the named encoders from the ``encoders`` registry (in the given order)."""
        from rdm_core.plugins import registry
        from rdm_core.seeding import seeded_init

        reg = registry("encoders")
        weights, args = dict(weights or {}), dict(args or {})
        encoders = {}
        for n in names:
            with seeded_init("encoder", n, variant):  # same random stand-ins as build_encoder
                encoders[n] = reg.create(n, variant=variant, weights=weights.get(n), **dict(args.get(n, {})))
        return cls(encoders, chunk_size=chunk_size, device=device, bf16_weights=bf16_weights)

    @classmethod
    def from_recipe(cls, recipe: Any, which: str = "train", device: torch.device | str = "cpu") -> Battery:
        """The recipe's battery (``train``, ``held_out`` or ``all``) via ``assemble.build_encoders``."""
        from rdm_core.recipe.assemble import build_encoders

        return cls(build_encoders(recipe, which, device), chunk_size=int(recipe.encoders.batch_size), device=device)

    # -- basic properties ---------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.encoders)

    @property
    def dims(self) -> dict[str, int]:
        return {n: int(e.spec.dim) for n, e in self.encoders.items()}

    def to(self, device: torch.device | str) -> Battery:
        self.device = torch.device(device)
        for enc in self.encoders.values():
            enc.to(self.device)
        return self

    def _select(self, only: Iterable[str] | None) -> list[str]:
        if only is None:
            return self.names
        wanted = list(only)
        for n in wanted:
            if n not in self.encoders:
                raise UnknownNameError(
                    "encoder", n, self.encoders, f"use one of this battery's encoders: {', '.join(self.encoders)}"
                )
        return [n for n in self.names if n in wanted]  # battery order, whatever order was asked

    # -- training path (differentiable) -------------------------------------------------------
    def __call__(self, images: Tensor, only: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Features of ``[0,1]`` images (``(B,3,H,W)``, or video ``(B,3,F,H,W)`` as frames).

        Differentiable with respect to ``images``; returns ``{name: (B, d) float32}`` in battery order.
        """
        x = as_image_batch(images)
        out: dict[str, Tensor] = {}
        for name in self._select(only):
            feats = self.encoders[name](x)
            if feats.dim() != 2 or feats.shape[0] != x.shape[0]:
                raise ShapeError(
                    f"encoder {name!r} returned shape {tuple(feats.shape)} for {x.shape[0]} images.",
                    "an encoder must return (B, dim) features",
                )
            out[name] = feats.float()
        return out

    # -- extraction path (no grad, chunked, cached) ------------------------------------------
    def extract(
        self,
        source: Any,
        *,
        only: Iterable[str] | None = None,
        cache_path: str | Path | None = None,
        source_id: str | None = None,
        progress: bool = True,
        description: str = "extracting features",
    ) -> dict[str, Tensor]:
        """Features of every image of ``source`` without gradients, as CPU float32 ``(N, d)``.

        Args:
            source: an ``ImageSource`` (``read``/``__len__``), an ``(N,3,H,W)`` tensor, or an
                iterable of image tensors / ``ImageBatch`` / ``(images, ...)`` tuples.
            only: a subset of encoder names (battery order is kept).
            cache_path: optional safetensors feature cache. Encoders whose cached spec and source
                identity match are read back; missing ones are computed and the file is rewritten
                atomically with every encoder's spec in its header.
            source_id: identity of the source for the cache; default: a content fingerprint
                (tensors, ``ImageSource.fingerprint``); plain iterables have none, so the caller
                owns invalidation (pass a ``source_id``).
            progress: show a rich progress bar.
            description: progress bar label.

        Raises:
            NonFiniteError: an encoder produced NaN/Inf (named, with the image range).
        """
        names = self._select(only)
        ident = source_id if source_id is not None else _source_identity(source)
        cached: dict[str, Tensor] = {}
        cached_specs: dict[str, Any] = {}
        if cache_path is not None and Path(cache_path).exists():
            cached, cached_specs = self._read_cache(Path(cache_path), ident)
        todo = [n for n in names if not (n in cached and cached_specs.get(n) == _spec_json(self.encoders[n]))]
        fresh = self._run(source, todo, progress, description) if todo else {}
        if cache_path is not None and fresh:
            keep = {n: t for n, t in cached.items() if n not in fresh}
            merged = {**keep, **fresh}
            specs = {**{n: cached_specs[n] for n in keep}, **{n: _spec_json(self.encoders[n]) for n in fresh}}
            n_rows = {int(t.shape[0]) for t in merged.values()}
            if len(n_rows) == 1:
                save_tensors(
                    cache_path,
                    merged,
                    meta={"kind": FEATURE_CACHE_KIND, "source": ident, "n": n_rows.pop(), "encoders": specs},
                )
        return {n: (fresh[n] if n in fresh else cached[n]) for n in names}

    def _read_cache(self, path: Path, ident: str | None) -> tuple[dict[str, Tensor], dict[str, Any]]:
        meta = read_meta(path)
        if meta.get("kind") != FEATURE_CACHE_KIND:
            raise ArtifactError(
                f"{path} is not a battery feature cache (kind={meta.get('kind')!r}).",
                "choose another cache_path, or delete the file",
            )
        if meta.get("source") != ident:  # other images: nothing in it is reusable
            return {}, {}
        tensors, _ = load_tensors(path)
        return tensors, dict(meta.get("encoders", {}))

    def _run(self, source: Any, names: list[str], show: bool, description: str) -> dict[str, Tensor]:
        from rdm_core.console import progress as make_progress

        parts: dict[str, list[Tensor]] = {n: [] for n in names}
        total = _length(source)
        bar = make_progress() if show else nullcontext()
        seen = 0
        with bar as prog, torch.no_grad():
            task = prog.add_task(description, total=total, status="") if prog is not None else None
            for images in _chunks(source, self.chunk_size):
                x = as_image_batch(images).to(self.device, non_blocking=True)
                for name in names:
                    if prog is not None:
                        prog.update(task, status=name)
                    feats = self.encoders[name](x).float()
                    if not torch.isfinite(feats).all():
                        raise NonFiniteError(
                            f"encoder {name!r} produced NaN/Inf features for images {seen}..{seen + x.shape[0] - 1}.",
                            "check those images (must be finite, in [0,1]) and the encoder's weights; "
                            "bf16 overflow points at the weights file",
                        )
                    parts[name].append(feats.cpu())
                seen += x.shape[0]
                if prog is not None:
                    prog.update(task, advance=x.shape[0])
        if seen == 0:
            raise ShapeError("the image source is empty: no features to extract.", "give at least one image")
        return {n: torch.cat(chunks) for n, chunks in parts.items()}


def _length(source: Any) -> int | None:
    if isinstance(source, Tensor):
        return int(as_image_batch(source).shape[0]) if source.dim() == 5 else int(source.shape[0])
    return len(source) if isinstance(source, ImageSource) else None  # a plain iterable: unknown


def _chunks(source: Any, size: int) -> Iterable[Tensor]:
    """Image tensors of at most ``size`` images from any supported source."""
    if isinstance(source, Tensor):
        for a, b in iter_chunks(source.shape[0], size):
            yield source[a:b]
    elif isinstance(source, ImageSource):
        for a, b in iter_chunks(len(source), size):
            yield source.read(list(range(a, b))).images
    else:
        for item in source:
            if isinstance(item, ImageBatch):
                item = item.images
            elif isinstance(item, (tuple, list)):
                item = item[0]
            if not isinstance(item, Tensor):
                raise ShapeError(
                    f"the image iterable yielded {type(item).__name__}, not an image tensor.",
                    "yield (B,3,H,W) tensors, ImageBatch objects or (images, ...) tuples",
                )
            for a, b in iter_chunks(item.shape[0], size):
                yield item[a:b]


def _source_identity(source: Any) -> str | None:
    if isinstance(source, Tensor):
        return "tensor:" + fingerprint_tensor(source)
    if isinstance(source, ImageSource):
        n = len(source)
        return "source:" + fingerprint_parts([str(n), *(f"{source.key(i)}={source.fingerprint(i)}" for i in range(n))])
    return None
