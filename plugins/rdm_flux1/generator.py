"""The ``flux1`` generator: FLUX.1 [schnell]/[dev] as a differentiable one-step generator (diffusers).

Noise is ``(16, H/8, W/8)`` in the VAE latent space (scaled/shifted); it is packed into 2x2 tokens of
64 channels, ``x0 = z - v(z, ctx, pooled, t=1)`` (the transformer multiplies t by 1000 itself; dev adds
a guidance embedding), unpacked, ``z / 0.3611 + 0.1159`` and decoded by the frozen ``AutoencoderKL``.
Conditions are ``(T5 context (B, L, 4096), CLIP pooled (B, 768))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rdm_core.errors import RdmError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_diffusers.base import DiffusersOneStepGenerator, check_precision, check_resolution, check_variant
from rdm_flux1.configs import HUB_IDS

PATTERNS = (
    "model_index.json",
    "transformer/*",
    "vae/*",
    "text_encoder/*",
    "text_encoder_2/*",
    "tokenizer/*",
    "tokenizer_2/*",
    "scheduler/*",
)


def pack(latents: Tensor) -> Tensor:
    """``(B, C, h, w)`` -> ``(B, h/2 * w/2, 4C)`` (2x2 patches, FluxPipeline order)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`pack` for a ``(h, w)`` latent."""
    b, _, c4 = tokens.shape
    x = tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)


def image_ids(h: int, w: int, device: Any) -> Tensor:
    """``(h/2 * w/2, 3)`` ids ``(0, row, col)`` of the packed tokens."""
    rows = torch.arange(h // 2, device=device).repeat_interleave(w // 2)
    cols = torch.arange(w // 2, device=device).repeat(h // 2)
    return torch.stack([torch.zeros_like(rows), rows, cols], dim=1).float()


class Flux1Generator(DiffusersOneStepGenerator):
    """FLUX.1 one-step generator.

    Args:
        model_dir: local ``FluxPipeline`` folder; ``None`` -> the hub (full) or an in-code tiny build.
        flavor: ``schnell`` (no guidance) or ``dev`` (guidance embedding, ``guidance`` value).
        variant: ``full`` or ``tiny``.
        resolution: output side (multiple of 16).
        ctx_len: T5 length (schnell 256, dev 512).
        guidance: dev guidance value (x1000 inside the model).
        prompts: prompts file encoded in memory for :meth:`sample_conditions`.
        precision: ``inherit``, ``bf16`` or ``fp32`` (see flux2-klein).
        vae_dtype: ``auto`` (bf16 full, fp32 tiny), ``bf16`` or ``fp32``.
    """

    generator_name = "flux1"
    weight_formats = ("auto", "diffusers", "bfl")
    weights_fix = "use FLUX.1 weights of the same flavor"

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the tiny FLUX.1 at 64 px with 32 T5 tokens; prompts in the rehearsal dir."""
        out = dict(args, variant="tiny", model_dir=None, resolution=min(int(args.get("resolution", 512)), 64))
        out.update(ctx_len=min(int(args.get("ctx_len", 256)), 32), vae_dtype="fp32")
        out["teacher_steps"] = min(int(args.get("teacher_steps", 4)), 2)
        if args.get("prompts"):
            out["prompts"] = rehearsal.prompts(args["prompts"])
        return out

    def __init__(
        self,
        model_dir: str | None = None,
        flavor: str = "schnell",
        hub_id: str | None = None,
        variant: str = "full",
        resolution: int = 512,
        ctx_len: int = 256,
        guidance: float = 3.5,
        prompts: str | None = None,
        precision: str = "inherit",
        vae_dtype: str = "auto",
        seed: int = 0,
        teacher_steps: int = 4,
    ) -> None:
        from diffusers import AutoencoderKL, FluxTransformer2DModel

        if flavor not in HUB_IDS:
            raise RdmError(f"flux1 flavor {flavor!r} is unknown.", "use 'schnell' or 'dev'")
        check_variant("flux1", variant)
        check_resolution(resolution, "use e.g. 512 (64 when tiny)")
        check_precision(precision, "use inherit, bf16 or fp32")
        self.flavor, self.variant, self.resolution, self.ctx_len = flavor, variant, int(resolution), int(ctx_len)
        self.guidance, self.prompts_file, self.precision = float(guidance), prompts, precision
        self.seed, self.teacher_steps = int(seed), int(teacher_steps)
        self._build_modules(
            model_dir,
            vae_dtype,
            tiny="rdm_flux1.tiny",
            transformer_cls=FluxTransformer2DModel,
            vae_cls=AutoencoderKL,
            hub_id=hub_id or HUB_IDS[flavor],
            patterns=PATTERNS,
        )
        if bool(self.transformer.config.guidance_embeds) != (flavor == "dev"):
            raise RdmError(
                f"the transformer {'has' if self.transformer.config.guidance_embeds else 'lacks'} a guidance "
                f"embedding, which does not fit flavor {flavor!r}.",
                "set generator.args.flavor to match the weights",
            )
        self._text: Any = None
        self._prompt_ctx: tuple[tuple[Tensor, Tensor], list[str]] | None = None

    def noise_shape(self) -> tuple[int, ...]:
        side = self.resolution // 8
        return (int(self.transformer.config.in_channels) // 4, side, side)

    def _inputs(self, noise: Tensor, conditions: Conditions) -> tuple[Tensor, Tensor]:
        c = int(self.transformer.config.in_channels) // 4
        if noise.dim() != 4 or noise.shape[1] != c or noise.shape[2] % 2 or noise.shape[3] % 2:
            raise ShapeError(
                f"noise must be (B, {c}, h, w) with even h, w; got {tuple(noise.shape)}.",
                "draw noise of shape (B, *noise_shape())",
            )
        inputs = conditions.inputs
        if not (isinstance(inputs, tuple) and len(inputs) == 2):
            raise ShapeError(
                "flux1 conditions must be a (T5 context, CLIP pooled) tuple.",
                "use sample_conditions() or conditions_from_prompts()",
            )
        ctx, pooled = inputs
        if (
            ctx.shape[0] != noise.shape[0]
            or pooled.shape[0] != noise.shape[0]
            or ctx.shape[-1] != self.transformer.config.joint_attention_dim
            or pooled.shape[-1] != self.transformer.config.pooled_projection_dim
        ):
            raise ShapeError(
                f"conditions {tuple(ctx.shape)} / {tuple(pooled.shape)} do not fit noise batch {noise.shape[0]} "
                "or the transformer's widths.",
                "encode the prompts with this model's text encoders",
            )
        return ctx.to(noise.device, noise.dtype), pooled.to(noise.device, noise.dtype)

    def _velocity(self, tokens: Tensor, ctx: Tensor, pooled: Tensor, sigma: Any, h: int, w: int) -> Tensor:
        b = tokens.shape[0]
        t = torch.as_tensor(sigma, device=tokens.device, dtype=tokens.dtype).expand(b)
        guidance = (
            torch.full((b,), self.guidance, device=tokens.device, dtype=torch.float32)
            if self.transformer.config.guidance_embeds
            else None
        )
        txt_ids = torch.zeros(ctx.shape[1], 3, device=tokens.device)
        return self.transformer(
            hidden_states=tokens,
            encoder_hidden_states=ctx,
            pooled_projections=pooled,
            timestep=t,
            img_ids=image_ids(h, w, tokens.device),
            txt_ids=txt_ids,
            guidance=guidance,
            return_dict=False,
        )[0]

    def _decode(self, tokens: Tensor, h: int, w: int) -> Tensor:
        cfg = self.vae.config
        z = unpack(tokens, h, w) / cfg.scaling_factor + cfg.shift_factor
        vae_dtype = next(self.vae.parameters()).dtype
        image = self.vae.decode(z.to(vae_dtype), return_dict=False)[0]
        image = image if image.dtype == torch.float64 else image.float()  # fp64 runs stay fp64
        return (image * 0.5 + 0.5).clamp(0.0, 1.0)

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step sample ``(B, 3, 8h, 8w)`` in ``[0, 1]``."""
        self._sync_frozen(noise.device)
        ctx, pooled = self._inputs(noise, conditions)
        _, _, h, w = noise.shape
        with self._autocast(noise.device):
            tokens = pack(noise)
            x0 = tokens - self._velocity(tokens, ctx, pooled, 1.0, h, w)
            return self._decode(x0, h, w)

    @torch.no_grad()
    def teacher_sample(self, noise: Tensor, conditions: Conditions, steps: int | None = None) -> Tensor:
        """Euler sampling on the FLUX.1 schedule (resolution-dependent shift), no gradients."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        from rdm_flux1.tiny import build_scheduler

        steps = int(steps or self.teacher_steps)
        self._sync_frozen(noise.device)
        ctx, pooled = self._inputs(noise, conditions)
        _, _, h, w = noise.shape
        sched = build_scheduler()
        seq = (h // 2) * (w // 2)
        cfg = sched.config
        mu = calculate_shift(seq, cfg.base_image_seq_len, cfg.max_image_seq_len, cfg.base_shift, cfg.max_shift)
        sched.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps), mu=mu, device=noise.device)
        sched.set_begin_index(0)
        x = pack(noise)
        with self._autocast(noise.device):
            for t in sched.timesteps:
                x = sched.step(self._velocity(x, ctx, pooled, (t / 1000).to(x.dtype), h, w), t, x, return_dict=False)[0]
            return self._decode(x, h, w)

    # -- conditions ---------------------------------------------------------------------------
    def text_pipeline(self) -> Any:
        """A ``FluxPipeline`` holding only the text encoders: its own ``encode_prompt`` does the work."""
        if self._text is None:
            from diffusers import FluxPipeline

            if self.model_dir is None:
                from rdm_flux1.tiny import (
                    build_tiny_clip_text,
                    build_tiny_clip_tokenizer,
                    build_tiny_t5_encoder,
                    build_tiny_t5_tokenizer,
                )

                tok, tok2 = build_tiny_clip_tokenizer(), build_tiny_t5_tokenizer()
                parts = dict(
                    text_encoder=build_tiny_clip_text(tok, self.seed + 4),
                    tokenizer=tok,
                    text_encoder_2=build_tiny_t5_encoder(len(tok2), self.seed + 3),
                    tokenizer_2=tok2,
                )
            else:
                from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

                dtype = self._text_dtype()
                root = str(self.model_dir)
                parts = dict(
                    text_encoder=CLIPTextModel.from_pretrained(
                        root, subfolder="text_encoder", dtype=dtype, local_files_only=True
                    ),
                    tokenizer=AutoTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True),
                    text_encoder_2=T5EncoderModel.from_pretrained(
                        root, subfolder="text_encoder_2", dtype=dtype, local_files_only=True
                    ),
                    tokenizer_2=AutoTokenizer.from_pretrained(root, subfolder="tokenizer_2", local_files_only=True),
                )
            parts["text_encoder"].requires_grad_(False)
            parts["text_encoder_2"].requires_grad_(False)
            self._text = FluxPipeline(scheduler=None, vae=None, transformer=None, **parts)
        return self._text

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(T5 context (n, ctx_len, 4096), CLIP pooled (n, 768))`` float32 on CPU."""
        device = self._device()
        pipe = self.text_pipeline().to(device)
        ctx, pooled, _ = pipe.encode_prompt(list(prompts), device=device, max_sequence_length=self.ctx_len)
        return ctx.float().cpu(), pooled.float().cpu()

    # -- weights --------------------------------------------------------------------------------
    def _to_diffusers_names(self, state: dict[str, Tensor], format: str) -> dict[str, Tensor]:
        """BFL names (``bfl``, or ``auto`` when the keys look like BFL's) -> diffusers names."""
        if format == "bfl" or (format == "auto" and any(k.startswith("double_blocks.") for k in state)):
            from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

            return convert_flux_transformer_checkpoint_to_diffusers(dict(state))
        return state

    def save_weights(self, path: str, format: str = "diffusers") -> None:
        """Save the transformer in diffusers naming (safetensors, atomic)."""
        self._save_diffusers_named(path, format, {"generator": "flux1", "flavor": self.flavor})
