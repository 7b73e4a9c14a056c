"""The ``wan`` generator: Wan 2.1 text-to-video as a differentiable one-step video generator.

Noise ``(16, (F-1)/4+1, H/8, W/8)`` stays unpacked (the transformer patchifies (1, 2, 2) inside). Unlike
FLUX, Wan takes the *raw* timestep (sigma x 1000), so one step is ``x0 = z - sigma * v`` with
``sigma = 1`` and ``timestep = 1000``; x0 is de-normalised (``x * std + mean`` from the VAE config) and
decoded by the frozen ``AutoencoderKLWan`` into ``(B, 3, F, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import RdmError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_diffusers.base import DiffusersOneStepGenerator, check_precision, check_variant
from rdm_wan.configs import HUB_ID_1_3B

PATTERNS = ("model_index.json", "transformer/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*")


class WanGenerator(DiffusersOneStepGenerator):
    """Wan 2.1 T2V one-step generator.

    Args:
        model_dir: local ``WanPipeline`` folder; ``None`` -> ``hub_id`` (full) or an in-code tiny build.
        variant: ``full`` or ``tiny``.
        height, width: frame size (multiples of 16).
        num_frames: output frames, ``4k + 1`` (81 for Wan 2.1).
        ctx_len: UMT5 length (512).
        sigma: the noise level of the one step (1.0: pure noise in, ``x0 = z - v``).
        prompts: prompts file encoded in memory for :meth:`sample_conditions`.
        precision: ``inherit``, ``bf16`` or ``fp32``.
        vae_dtype: ``auto`` (fp32; the Wan VAE is run in fp32 by its pipeline), ``bf16`` or ``fp32``.
    """

    generator_name = "wan"
    weights_fix = "use diffusers-named weights of the same Wan size (convert others with diffusers' Wan script)"

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the tiny Wan, 5 frames of 32x32, 16 text tokens; prompts in the rehearsal dir."""
        out = dict(args, variant="tiny", model_dir=None, height=32, width=32, num_frames=5)
        out.update(ctx_len=min(int(args.get("ctx_len", 512)), 16), vae_dtype="fp32")
        out["teacher_steps"] = min(int(args.get("teacher_steps", 4)), 2)
        if args.get("prompts"):
            out["prompts"] = rehearsal.prompts(args["prompts"])
        return out

    def __init__(
        self,
        model_dir: str | None = None,
        hub_id: str = HUB_ID_1_3B,
        variant: str = "full",
        height: int = 480,
        width: int = 832,
        num_frames: int = 81,
        ctx_len: int = 512,
        sigma: float = 1.0,
        prompts: str | None = None,
        precision: str = "inherit",
        vae_dtype: str = "auto",
        seed: int = 0,
        teacher_steps: int = 4,
    ) -> None:
        from diffusers import AutoencoderKLWan, WanTransformer3DModel

        check_variant("wan", variant)
        if height % 16 or width % 16 or height <= 0 or width <= 0:
            raise RdmError(
                f"frame size {height}x{width} is not a multiple of 16.", "use e.g. 480x832 (32x32 when tiny)"
            )
        if num_frames < 1 or (num_frames - 1) % 4:
            raise RdmError(f"num_frames {num_frames} is not 4k+1.", "use e.g. 81, 33 or 5")
        check_precision(precision, "use inherit, bf16 or fp32")
        self.variant, self.height, self.width, self.num_frames = variant, int(height), int(width), int(num_frames)
        self.ctx_len, self.sigma, self.prompts_file, self.precision = int(ctx_len), float(sigma), prompts, precision
        self.seed, self.teacher_steps = int(seed), int(teacher_steps)
        self._build_modules(
            model_dir,
            vae_dtype,
            tiny="rdm_wan.tiny",
            transformer_cls=WanTransformer3DModel,
            vae_cls=AutoencoderKLWan,
            hub_id=hub_id,
            patterns=PATTERNS,
            vae_auto_full="fp32",
        )
        self._text: Any = None
        self._prompt_ctx: tuple[Tensor, list[str]] | None = None

    def noise_shape(self) -> tuple[int, ...]:
        cfg = self.vae.config
        return (
            int(self.transformer.config.in_channels),
            (self.num_frames - 1) // cfg.scale_factor_temporal + 1,
            self.height // cfg.scale_factor_spatial,
            self.width // cfg.scale_factor_spatial,
        )

    def _context(self, noise: Tensor, conditions: Conditions) -> Tensor:
        c = int(self.transformer.config.in_channels)
        if noise.dim() != 5 or noise.shape[1] != c:
            raise ShapeError(
                f"noise must be (B, {c}, f, h, w), got {tuple(noise.shape)}.", "draw noise of shape (B, *noise_shape())"
            )
        ctx = conditions.inputs
        if (
            not isinstance(ctx, Tensor)
            or ctx.dim() != 3
            or ctx.shape[0] != noise.shape[0]
            or ctx.shape[2] != self.transformer.config.text_dim
        ):
            raise ShapeError(
                f"wan conditions must be a (B, L, {self.transformer.config.text_dim}) UMT5 context per noise sample.",
                "use sample_conditions() or conditions_from_prompts()",
            )
        return ctx.to(noise.device, noise.dtype)

    def _velocity(self, x: Tensor, ctx: Tensor, timestep: Tensor) -> Tensor:
        return self.transformer(
            hidden_states=x, timestep=timestep.expand(x.shape[0]), encoder_hidden_states=ctx, return_dict=False
        )[0]

    def _decode(self, latents: Tensor) -> Tensor:
        cfg = self.vae.config
        dtype = next(self.vae.parameters()).dtype
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean, device=latents.device, dtype=latents.dtype).view(shape)
        std = torch.tensor(cfg.latents_std, device=latents.device, dtype=latents.dtype).view(shape)
        video = self.vae.decode((latents * std + mean).to(dtype), return_dict=False)[0]
        video = video if video.dtype == torch.float64 else video.float()  # fp64 runs stay fp64
        return (video * 0.5 + 0.5).clamp(0.0, 1.0)

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step video ``(B, 3, F, H, W)`` in ``[0, 1]``."""
        self._sync_frozen(noise.device)
        ctx = self._context(noise, conditions)
        t = torch.tensor(self.sigma * 1000.0, device=noise.device)  # Wan takes the raw timestep
        with self._autocast(noise.device):
            x0 = noise - self.sigma * self._velocity(noise, ctx, t)
            return self._decode(x0)

    @torch.no_grad()
    def teacher_sample(self, noise: Tensor, conditions: Conditions, steps: int | None = None) -> Tensor:
        """Euler sampling on the shifted flow-matching schedule (no CFG), no gradients."""
        from rdm_wan.tiny import build_scheduler

        self._sync_frozen(noise.device)
        ctx = self._context(noise, conditions)
        sched = build_scheduler()
        sched.set_timesteps(int(steps or self.teacher_steps), device=noise.device)
        sched.set_begin_index(0)
        x = noise
        with self._autocast(noise.device):
            for t in sched.timesteps:
                x = sched.step(self._velocity(x, ctx, t), t, x, return_dict=False)[0]
            return self._decode(x)

    # -- conditions ---------------------------------------------------------------------------
    def text_pipeline(self) -> Any:
        """A ``WanPipeline`` holding only tokenizer + UMT5: its ``encode_prompt`` does the work."""
        if self._text is None:
            from diffusers import WanPipeline

            if self.model_dir is None:
                from rdm_flux1.tiny import build_tiny_t5_tokenizer
                from rdm_wan.tiny import build_tiny_text_encoder

                tok = build_tiny_t5_tokenizer()
                enc = build_tiny_text_encoder(len(tok), self.seed + 2)
            else:
                from transformers import AutoTokenizer, UMT5EncoderModel

                dtype = self._text_dtype()
                tok = AutoTokenizer.from_pretrained(str(self.model_dir), subfolder="tokenizer", local_files_only=True)
                enc = UMT5EncoderModel.from_pretrained(
                    str(self.model_dir), subfolder="text_encoder", dtype=dtype, local_files_only=True
                )
            self._text = WanPipeline(tokenizer=tok, text_encoder=enc.requires_grad_(False), vae=None, scheduler=None)
        return self._text

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """UMT5 contexts ``(n, ctx_len, 4096)`` (zeroed past each prompt, as the pipeline does)."""
        device = self._device()
        pipe = self.text_pipeline()
        pipe.text_encoder.to(device)
        ctx, _ = pipe.encode_prompt(
            list(prompts), do_classifier_free_guidance=False, max_sequence_length=self.ctx_len, device=device
        )
        return ctx.float().cpu()

    # -- weights --------------------------------------------------------------------------------
    def save_weights(self, path: str, format: str = "diffusers") -> None:
        """Save the transformer in diffusers naming (safetensors, atomic)."""
        self._save_diffusers_named(path, format, {"generator": "wan"})
