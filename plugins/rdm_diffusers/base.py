"""The base class of the diffusers-based one-step generators (flux2-klein, flux1, wan).

Each of them trains a diffusers transformer (fp32 master weights, bf16 from autocast) and decodes
through a frozen VAE that stays differentiable w.r.t. its input. This module owns that common
plumbing: argument checks, building the modules (tiny random-weight build or a local/hub folder),
precision, checkpointing, keeping the VAE next to the transformer, the in-memory prompt table and
strict weight loading. The model-specific parts (noise layout, velocity call, decode, text
encoders, other weight layouts) stay in each generator.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.errors import ArtifactError, RdmError
from rdm_core.interfaces import Conditions
from rdm_diffusers.loading import PIPELINE_PATTERNS, load_component, parse_dtype, resolve_model_dir

PRECISIONS = ("inherit", "bf16", "fp32")


def check_variant(name: str, variant: str) -> None:
    """Raise unless ``variant`` is ``full`` or ``tiny`` (``name``: the registry name, for the message)."""
    if variant not in ("full", "tiny"):
        raise RdmError(f"{name} variant {variant!r} is unknown.", "use 'full' or 'tiny'")


def check_resolution(resolution: int, fix: str) -> None:
    """Raise unless ``resolution`` is a positive multiple of 16; ``fix`` suggests a value."""
    if resolution % 16 or resolution <= 0:
        raise RdmError(f"resolution {resolution} is not a positive multiple of 16.", fix)


def check_precision(precision: str, fix: str = f"use one of: {', '.join(PRECISIONS)}") -> None:
    """Raise unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise RdmError(f"precision {precision!r} is unknown.", fix)


def toggle_checkpointing(module: Any, on: bool, fn: Callable[..., Any] | None = None) -> None:
    """Switch a diffusers model's per-block checkpointing on (with ``fn``, else diffusers' default) or off."""
    if on:
        module.enable_gradient_checkpointing(fn)
    elif module.is_gradient_checkpointing:
        module.disable_gradient_checkpointing()


class DiffusersOneStepGenerator:
    """Base of the diffusers one-step generators: a trainable ``transformer`` and a frozen ``vae``.

    Subclasses set :attr:`generator_name`, validate their own arguments, set ``variant``, ``seed``,
    ``precision`` and ``prompts_file``, then call :meth:`_build_modules`. They implement
    ``noise_shape``, ``generate``, ``teacher_sample`` and ``encode_prompts`` (used by
    :meth:`conditions_from_prompts` and the prompt table), and override
    :meth:`_to_diffusers_names` when they read weight layouts other than diffusers'.

    Capabilities (:mod:`rdm_core.capabilities`): prompt-conditioned, teacher sampler, gradient
    checkpointing.
    """

    #: registry name, used in error messages and weight metadata
    generator_name: str = ""
    #: ``load_weights`` formats (``auto`` detects the layout from the key names)
    weight_formats: tuple[str, ...] = ("auto", "diffusers")
    #: how to fix weights that do not match the transformer (model-specific advice)
    weights_fix: str = "use weights of the same model size"

    transformer: Any
    vae: Any
    model_dir: Path | None
    variant: str
    seed: int
    precision: str
    prompts_file: str | None
    _prompt_ctx: tuple[Any, list[str]] | None

    def _build_modules(
        self,
        model_dir: str | None,
        vae_dtype: str,
        *,
        tiny: str,
        transformer_cls: Any,
        vae_cls: Any,
        hub_id: str,
        revision: str | None = None,
        patterns: tuple[str, ...] = PIPELINE_PATTERNS,
        vae_auto_full: str = "bf16",
    ) -> None:
        """Set ``transformer`` (fp32, train mode), ``vae`` (frozen, eval) and ``model_dir``.

        Args:
            model_dir: local pipeline folder; ``None`` -> the in-code tiny build (``variant="tiny"``)
                or a snapshot of ``hub_id`` from the Hugging Face cache/hub.
            vae_dtype: ``auto``, ``bf16`` or ``fp32``; ``auto`` is ``vae_auto_full`` for the full
                variant and fp32 for tiny.
            tiny: module with ``build_tiny_transformer(seed)`` / ``build_tiny_vae(seed)``; the VAE
                gets ``seed + 1`` so the two draws differ.
            transformer_cls, vae_cls: diffusers classes loaded from ``transformer/`` and ``vae/``.
            hub_id, revision, patterns: what :func:`resolve_model_dir` fetches when ``model_dir`` is ``None``.
            vae_auto_full: the ``auto`` VAE dtype of the full variant.
        """
        vae_torch_dtype = parse_dtype(
            (vae_auto_full if self.variant == "full" else "fp32") if vae_dtype == "auto" else vae_dtype
        )
        self.model_dir = None
        if model_dir is None and self.variant == "tiny":
            builders = importlib.import_module(tiny)
            self.transformer = builders.build_tiny_transformer(self.seed)
            self.vae = builders.build_tiny_vae(self.seed + 1)
            if vae_torch_dtype != torch.float32:
                self.vae.to(vae_torch_dtype)
        else:
            self.model_dir = resolve_model_dir(model_dir, hub_id, revision, patterns)
            self.transformer = load_component(transformer_cls, self.model_dir, "transformer", torch.float32)
            self.vae = load_component(vae_cls, self.model_dir, "vae", vae_torch_dtype)
        if next(self.transformer.parameters()).dtype != torch.float32:
            self.transformer.float()  # fp32 master weights; bf16 comes from autocast
        self.transformer.train()
        self.vae.eval().requires_grad_(False)  # frozen, but decode stays differentiable w.r.t. its input

    # -- training plumbing ------------------------------------------------------------------
    def trainable_module(self) -> nn.Module:
        """The transformer (the VAE and text encoders are frozen)."""
        return self.transformer

    def set_gradient_checkpointing(self, on: bool) -> None:
        """Per-block activation checkpointing of the transformer (diffusers' default function)."""
        toggle_checkpointing(self.transformer, on)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """``bf16`` forces bf16 autocast, ``fp32`` disables it, ``inherit`` keeps the caller's."""
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        if self.precision == "fp32":
            return torch.autocast(device.type, enabled=False)
        return contextlib.nullcontext()

    def _sync_frozen(self, device: torch.device) -> None:
        """The VAE follows the trainable module's device (and fp64, for exactness runs).

        ``build_generator`` moves only the trainable module, so the frozen one catches up here.
        """
        param = next(self.vae.parameters())
        want = torch.float64 if next(self.transformer.parameters()).dtype == torch.float64 else param.dtype
        if param.device != device or param.dtype != want:
            self.vae.to(device=device, dtype=want)

    def _device(self) -> torch.device:
        """Where the transformer lives (text encoders run there too)."""
        return next(self.transformer.parameters()).device

    def _text_dtype(self) -> torch.dtype:
        """Text encoders load in bf16 for the full variant, fp32 otherwise."""
        return torch.bfloat16 if self.variant == "full" else torch.float32

    # -- conditions -------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        """Model-specific contexts for ``prompts`` (implemented by each generator)."""
        raise NotImplementedError

    def conditions_from_prompts(self, prompts: Sequence[str]) -> Conditions:
        """Eval/generation conditions encoded from the prompts' own text (never sliced from a pool)."""
        prompts = list(prompts)
        return Conditions(inputs=self.encode_prompts(prompts), caption_ids=None, captions=prompts)

    def _store_prompt_contexts(self, encoded: Any) -> Any:
        """How :meth:`_prompt_contexts` keeps the encoded table (as is; klein overrides)."""
        return encoded

    def _prompt_contexts(self) -> tuple[Any, list[str]]:
        """The prompts file and its contexts, encoded once and cached in memory."""
        if self._prompt_ctx is None:
            from rdm_core.prompts import read_prompts

            prompts = read_prompts(self.prompts_file)
            self._prompt_ctx = (self._store_prompt_contexts(self.encode_prompts(prompts)), prompts)
        return self._prompt_ctx

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """``n`` uniformly drawn prompts of the prompts file (encoded once, cached in memory)."""
        if not self.prompts_file:
            raise RdmError(
                f"{self.generator_name} needs a prompts file to draw training conditions.",
                "set generator.args.prompts to a .txt/.jsonl prompts file",
            )
        table, prompts = self._prompt_contexts()
        rows = torch.randint(0, len(prompts), (n,), generator=rng)
        # a tuple table (flux1: T5 context, CLIP pooled) is indexed part by part
        inputs = tuple(part[rows] for part in table) if isinstance(table, tuple) else table[rows]
        return Conditions(inputs=inputs, caption_ids=rows, captions=[prompts[i] for i in rows.tolist()])

    # -- weights ----------------------------------------------------------------------------
    def load_weights(self, path: str, format: str = "auto") -> None:
        """Load transformer weights strictly (a file or a diffusers folder; see :attr:`weight_formats`).

        Raises:
            RdmError: a format this generator does not read.
            WeightsNotFoundError: nothing at ``path``.
            ArtifactError: an unreadable file, or any missing or unexpected key.
        """
        from rdm_diffusers.weights import read_state_dict

        if format not in self.weight_formats:
            raise RdmError(
                f"unknown weights format {format!r} for {self.generator_name}.",
                f"use one of: {', '.join(self.weight_formats)}",
            )
        state = self._to_diffusers_names(read_state_dict(path), format)
        result = self.transformer.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            missing, unexpected = result.missing_keys, result.unexpected_keys
            raise ArtifactError(
                f"{path} does not match the {self.generator_name} transformer: missing {missing[:3]} "
                f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)}).",
                self.weights_fix,
            )

    def _to_diffusers_names(self, state: dict[str, Tensor], format: str) -> dict[str, Tensor]:
        """A state dict in ``format`` -> diffusers key names (as is here; generators with more layouts override)."""
        return state

    def _save_diffusers_named(self, path: str, format: str, meta: dict[str, Any]) -> None:
        """Save the transformer state dict as is (diffusers naming; ``rdm`` is accepted as an alias)."""
        from rdm_core.artifacts import save_tensors

        if format not in ("diffusers", "rdm"):
            raise RdmError(
                f"{self.generator_name} saves only diffusers naming, not {format!r}.", "use format='diffusers'"
            )
        save_tensors(path, self.transformer.state_dict(), meta)
