"""The ``flux2-klein`` generator: FLUX.2 [klein] as a differentiable one-step generator (diffusers).

One step at sigma = 1 is ``x0 = z - v(z, ctx, t=1)`` in the BN-normalised, 2x2-patchified latent space;
x0 is de-normalised with the VAE's BN statistics, unpatchified and decoded by the frozen VAE, whose
decode stays differentiable so gradients reach the transformer. The transformer keeps fp32 master
weights; bf16 comes from autocast (the trainer's, or this generator's ``precision`` argument).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rdm_core.errors import RdmError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_diffusers.base import (
    PRECISIONS,
    DiffusersOneStepGenerator,
    check_precision,
    check_resolution,
    check_variant,
    toggle_checkpointing,
)
from rdm_diffusers.loading import parse_dtype, resolve_model_dir
from rdm_flux2 import convert, latents
from rdm_flux2.configs import DEFAULT_CTX_LEN, HUB_ID_4B, TEXT_LAYERS

__all__ = ["PRECISIONS", "Flux2KleinGenerator"]


class Flux2KleinGenerator(DiffusersOneStepGenerator):
    """FLUX.2 [klein] one-step generator.

    Args:
        model_dir: local folder in ``Flux2KleinPipeline`` layout; ``None`` -> ``hub_id`` (full) or an
            in-code random-weight build (tiny).
        hub_id: hub repository used when ``model_dir`` is ``None`` and ``variant="full"``.
        revision: hub revision.
        variant: ``full`` or ``tiny`` (the tiny configs of ``rdm_flux2.configs``, seeded random weights).
        resolution: output side in pixels (multiple of 16).
        ctx_len: context length (48 in training and GenEval; 232 for PickScore-pa).
        context_pool: ``.npy`` context pool (``rdm context build``) for :meth:`sample_conditions`.
        prompts: prompts file encoded in memory when there is no pool (small/tiny runs only).
        precision: ``inherit`` (use the caller's autocast), ``bf16`` (force autocast) or ``fp32``.
        vae_dtype: ``auto`` (bf16 for full, fp32 for tiny), ``bf16`` or ``fp32``.
        seed: seed of the tiny build.
        teacher_steps: default step count of :meth:`teacher_sample`.
        gradient_checkpointing: per-block checkpointing of the transformer.
        vae_checkpointing: when checkpointing is on, also checkpoint the frozen decoder's up-blocks
            (the decoder keeps ~3.4 GB of bf16 activations per 512 px sample for the backward pass).
        transformer_file: BFL's single transformer file (``flux-2-klein-4b.safetensors``) instead
            of the folder's ``transformer/``.
        vae_file: FLUX.2-dev's ``ae.safetensors`` (BFL naming) instead of the folder's ``vae/``.
            With both files nothing else is loaded until prompts are encoded (Qwen3 then comes
            from ``model_dir`` or the hub cache).
    """

    generator_name = "flux2-klein"
    weight_formats = convert.FORMATS
    weights_fix = "use weights of the same klein size (4B/9B) and the right format ('diffusers', 'bfl', 'rdm')"

    #: latent positions decoded together by :meth:`teacher_sample` (64 latents at 512 px)
    decode_tokens: int = 64 * 1024

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the tiny klein at 64 px; its prompts and context pool in the rehearsal dir."""
        out = dict(args, variant="tiny", model_dir=None, resolution=min(int(args.get("resolution", 512)), 64))
        out.update(vae_dtype="fp32", teacher_steps=min(int(args.get("teacher_steps", 4)), 2))
        if args.get("prompts"):
            out["prompts"] = rehearsal.prompts(args["prompts"])
        if args.get("context_pool"):
            out["context_pool"] = rehearsal.output(args["context_pool"])
        return out

    def __init__(
        self,
        model_dir: str | None = None,
        hub_id: str = HUB_ID_4B,
        revision: str | None = None,
        variant: str = "full",
        resolution: int = 512,
        ctx_len: int = DEFAULT_CTX_LEN,
        context_pool: str | None = None,
        prompts: str | None = None,
        precision: str = "inherit",
        vae_dtype: str = "auto",
        seed: int = 0,
        teacher_steps: int = 4,
        gradient_checkpointing: bool = False,
        vae_checkpointing: bool = False,
        transformer_file: str | None = None,
        vae_file: str | None = None,
    ) -> None:
        from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

        check_variant("flux2-klein", variant)
        check_resolution(resolution, "use e.g. 512 (or 64 when tiny)")
        check_precision(precision)
        self.variant, self.resolution, self.ctx_len = variant, int(resolution), int(ctx_len)
        self.precision, self.seed, self.teacher_steps = precision, int(seed), int(teacher_steps)
        self.context_pool, self.prompts_file = context_pool, prompts
        self._text_hub = (hub_id, revision)
        if transformer_file and vae_file:  # BFL's single files: nothing else is needed to train
            from rdm_flux2.bfl_files import build_from_single_files

            self.transformer, self.vae = build_from_single_files(
                transformer_file, vae_file, variant=variant, model_dir=model_dir, hub_id=hub_id, vae_dtype=vae_dtype
            )
            self.model_dir = Path(model_dir) if model_dir else None
            self.transformer.train()
            self.vae.eval().requires_grad_(False)
        else:
            self._build_modules(
                model_dir,
                vae_dtype,
                tiny="rdm_flux2.tiny",
                transformer_cls=Flux2Transformer2DModel,
                vae_cls=AutoencoderKLFlux2,
                hub_id=hub_id,
                revision=revision,
            )
            if transformer_file or vae_file:  # one of the two as a BFL file, the other from the folder
                from rdm_flux2.bfl_files import replace_from_single_file

                replace_from_single_file(self, transformer_file, vae_file)
        if self.transformer.config.guidance_embeds:
            raise RdmError(
                "this transformer has a guidance embedding (FLUX.2-dev), not klein.",
                "point model_dir at a FLUX.2-klein folder",
            )
        self._text: Any = None
        self._pool: Any = None
        self._prompt_ctx: tuple[Tensor, list[str]] | None = None
        self.vae_checkpointing = bool(vae_checkpointing)
        self.set_gradient_checkpointing(gradient_checkpointing)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def ctx_dim(self) -> int:
        return int(self.transformer.config.joint_attention_dim)

    def noise_shape(self) -> tuple[int, ...]:
        """``(128, H/16, W/16)``: standard normal noise in the normalised, patchified latent space."""
        side = self.resolution // 16
        return (int(self.transformer.config.in_channels), side, side)

    def set_gradient_checkpointing(self, on: bool) -> None:
        """Per-block activation checkpointing (non-reentrant; klein has no dropout, so no RNG replay).

        With ``vae_checkpointing`` the frozen decoder's blocks are checkpointed too; its input still
        receives the exact same gradient.
        """
        from torch.utils.checkpoint import checkpoint

        fn = partial(checkpoint, use_reentrant=False, preserve_rng_state=False)
        toggle_checkpointing(self.transformer, on, fn)
        toggle_checkpointing(self.vae, on and self.vae_checkpointing, fn)

    def to(self, device: torch.device | str) -> Flux2KleinGenerator:
        self.transformer.to(device)
        self.vae.to(device)
        return self

    # -- sampling ---------------------------------------------------------------------------
    def _context(self, conditions: Conditions, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        ctx = conditions.inputs
        if not isinstance(ctx, Tensor) or ctx.dim() != 3:
            raise ShapeError(
                f"flux2-klein conditions must be a (B, L, {self.ctx_dim}) context tensor, got "
                f"{type(ctx).__name__}{tuple(ctx.shape) if isinstance(ctx, Tensor) else ''}.",
                "use sample_conditions() or conditions_from_prompts()",
            )
        if ctx.shape[0] != batch or ctx.shape[2] != self.ctx_dim:
            raise ShapeError(
                f"context {tuple(ctx.shape)} does not fit noise batch {batch} / width {self.ctx_dim}.",
                "use one context row per noise sample, from a pool built for this generator",
            )
        return ctx.to(device=device, dtype=dtype)

    def _check_noise(self, noise: Tensor) -> None:
        c = int(self.transformer.config.in_channels)
        if noise.dim() != 4 or noise.shape[1] != c:
            raise ShapeError(
                f"noise must be (B, {c}, h, w), got {tuple(noise.shape)}.", "draw noise of shape (B, *noise_shape())"
            )

    def velocity(self, tokens: Tensor, ctx: Tensor, sigma: float | Tensor, height: int, width: int) -> Tensor:
        """The transformer's velocity for packed tokens at ``sigma`` in [0, 1] (x1000 happens inside)."""
        device = tokens.device
        t = torch.as_tensor(sigma, device=device, dtype=tokens.dtype).expand(tokens.shape[0])
        return self.transformer(
            hidden_states=tokens,
            encoder_hidden_states=ctx,
            timestep=t,
            img_ids=latents.latent_ids(height, width, device),
            txt_ids=latents.text_ids(ctx.shape[1], device),
            guidance=None,
            return_dict=False,
        )[0]

    def one_step_latents(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable x0 = z - v(z, ctx, t=1) as ``(B, 128, h, w)`` normalised latents."""
        self._check_noise(noise)
        b, _, h, w = noise.shape
        ctx = self._context(conditions, b, noise.device, noise.dtype)
        tokens = latents.pack(noise)
        x0 = tokens - self.velocity(tokens, ctx, 1.0, h, w)
        return latents.unpack(x0, h, w)

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step sample: ``(B, 3, 16h, 16w)`` images in ``[0, 1]``."""
        self._sync_frozen(noise.device)
        with self._autocast(noise.device):
            return latents.decode_to_unit(self.one_step_latents(noise, conditions), self.vae)

    @torch.no_grad()
    def teacher_sample(self, noise: Tensor, conditions: Conditions, steps: int | None = None) -> Tensor:
        """Multi-step Euler sampling (the klein schedule: dynamic exponential shift), no gradients."""
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        from rdm_flux2.tiny import build_scheduler

        steps = int(steps or self.teacher_steps)
        self._check_noise(noise)
        self._sync_frozen(noise.device)
        b, _, h, w = noise.shape
        ctx = self._context(conditions, b, noise.device, noise.dtype)
        scheduler = build_scheduler()
        # the pipeline's own grid (np.linspace), so teacher renders match Flux2KleinPipeline exactly
        sigmas = np.linspace(1.0, 1.0 / steps, steps)
        scheduler.set_timesteps(sigmas=sigmas, mu=compute_empirical_mu(h * w, steps), device=noise.device)
        scheduler.set_begin_index(0)
        x = latents.pack(noise)
        with self._autocast(noise.device):
            for t in scheduler.timesteps:
                v = self.velocity(x, ctx, (t / 1000).to(x.dtype), h, w)
                x = scheduler.step(v, t, x, return_dict=False)[0]
            z = latents.unpack(x, h, w)
            # decode in chunks of max(1, 64 x 1024 / (h x w)) latents (64 at 512 px), as the release does
            chunk = max(1, self.decode_tokens // (h * w))
            return torch.cat([latents.decode_to_unit(z[i : i + chunk], self.vae) for i in range(0, b, chunk)])

    # -- conditions -------------------------------------------------------------------------
    def text_encoder(self) -> Any:
        """The Qwen3 context encoder, loaded on first use (training uses the pool instead)."""
        if self._text is None:
            from rdm_flux2.text import Qwen3ContextEncoder

            if self.model_dir is None and self.variant == "full":  # built from BFL files: Qwen3 from the hub cache
                hub_id, revision = self._text_hub
                self.model_dir = resolve_model_dir(None, hub_id, revision, ("text_encoder/*", "tokenizer/*"))
            if self.model_dir is None:
                from rdm_flux2.tiny import build_tiny_text_encoder, build_tiny_tokenizer

                tok = build_tiny_tokenizer()
                self._text = Qwen3ContextEncoder(build_tiny_text_encoder(len(tok), self.seed + 2), tok, TEXT_LAYERS)
            else:
                self._text = Qwen3ContextEncoder.from_folder(self.model_dir, dtype=self._text_dtype())
            if self._text.dim != self.ctx_dim:
                raise ShapeError(
                    f"text encoder gives {self._text.dim}-wide contexts, the transformer expects {self.ctx_dim}.",
                    "use the text encoder shipped with this klein model",
                )
        return self._text

    def encode_prompts(self, prompts: Sequence[str], ctx_len: int | None = None) -> Tensor:
        """Contexts ``(n, ctx_len, dim)`` float32 for ``prompts`` (no grad; Qwen3 on the fly)."""
        enc = self.text_encoder().to(self._device())
        return enc.encode(list(prompts), int(ctx_len or self.ctx_len))

    def pool(self) -> Any:
        if self._pool is None and self.context_pool:
            from rdm_flux2.context_pool import ContextPool

            pool = ContextPool(self.context_pool, expect={"ctx_len": self.ctx_len, "dim": self.ctx_dim})
            if self.prompts_file and pool.prompts() is not None:
                from rdm_core.prompts import read_prompts

                # the joint feature's tau table is built from the prompts file: its rows must be the pool's
                if pool.prompts() != read_prompts(self.prompts_file):
                    from rdm_core.errors import ArtifactError

                    raise ArtifactError(
                        f"context pool {pool.path} was not built from {self.prompts_file} (rows differ).",
                        "rebuild the pool from that prompts file with `rdm context build`, or fix generator.args.prompts",
                    )
            self._pool = pool
        return self._pool

    def _store_prompt_contexts(self, encoded: Tensor) -> Tensor:
        """The no-pool prompt table is kept as fp16 on the CPU, like a context pool."""
        return encoded.to(torch.float16).cpu()

    def num_conditions(self) -> int:
        """Rows of the prompt pool (the joint feature's text table must have as many)."""
        pool = self.pool()
        if pool is not None:
            return len(pool)
        if self.prompts_file:
            return len(self._prompt_contexts()[1])
        raise RdmError(
            "flux2-klein has neither a context_pool nor a prompts file.",
            "build one with `rdm context build RECIPE --prompts FILE -o POOL.npy` and set generator.args.context_pool",
        )

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """``n`` uniformly drawn pool rows: ``Conditions(inputs=ctx, caption_ids=rows, captions)``."""
        rows = torch.randint(0, self.num_conditions(), (n,), generator=rng)
        pool = self.pool()
        if pool is not None:
            prompts = pool.prompts()
            ctx = pool.rows(rows)
        else:
            table, prompts = self._prompt_contexts()
            ctx = table[rows].float()
        captions = [prompts[i] for i in rows.tolist()] if prompts else None
        return Conditions(inputs=ctx, caption_ids=rows, captions=captions)

    # -- weights ----------------------------------------------------------------------------
    def _to_diffusers_names(self, state: dict[str, Tensor], format: str) -> dict[str, Tensor]:
        """diffusers, BFL or RDM-release (``model.`` + BFL) names -> diffusers names (``auto`` detects)."""
        return convert.to_diffusers_state(state, format)

    def save_weights(self, path: str, format: str = "rdm", dtype: str | None = None) -> None:
        """Save the transformer as ``rdm`` (``model.`` + BFL), ``bfl`` or ``diffusers``.

        A ``diffusers`` path without ``.safetensors`` suffix becomes a model folder
        (``config.json`` + ``diffusion_pytorch_model.safetensors``) that ``from_pretrained`` reads.
        """
        from rdm_core.artifacts import save_tensors, write_json

        state = self.transformer.state_dict()
        if dtype:
            state = {k: v.to(parse_dtype(dtype)) for k, v in state.items()}
        out = convert.from_diffusers_state(state, format)
        meta = {"generator": "flux2-klein", "format": format, "variant": self.variant}
        p = Path(path)
        if format == "diffusers" and p.suffix != ".safetensors":
            write_json(p / "config.json", dict(self.transformer.config, _class_name="Flux2Transformer2DModel"))
            save_tensors(p / "diffusion_pytorch_model.safetensors", out, meta)
            return
        save_tensors(p, out, meta)

    @classmethod
    def plan_stats(
        cls,
        variant: str = "full",
        resolution: int = 512,
        ctx_len: int = DEFAULT_CTX_LEN,
        model_dir: str | None = None,
        vae_checkpointing: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        """Sizes and forward FLOPs per sample for ``rdm plan``, from configs only (no weights).

        Takes the generator's own arguments (extra ones are ignored). FLOPs are counted exactly with
        ``torch.utils.flop_counter`` on meta-device models (no memory; ~2 s at 4B):
        ``flops_per_sample`` is one transformer forward at ``resolution``/``ctx_len``,
        ``frozen_flops_per_sample`` one VAE decode (the frozen part gradients flow through),
        ``frozen_activation_bytes_per_sample`` what autograd keeps of that decode under the training
        autocast (CUDA policy, emulated on the meta device), ``condition_bytes_per_sample`` one
        sample's fp32 context.
        """
        from rdm_flux2.plan_stats import klein_plan_stats

        return klein_plan_stats(variant, resolution, ctx_len, model_dir, vae_checkpointing)
