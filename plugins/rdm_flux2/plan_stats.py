"""What ``rdm plan`` needs of the klein generator, measured from configs alone (no weights).

The transformer and the VAE are built on the meta device from their configs and their forwards
are counted with ``torch.utils.flop_counter``: no memory is allocated and nothing is downloaded
(~2 s at 4B).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
from torch.utils.flop_counter import FlopCounterMode

from rdm_diffusers.loading import resolve_model_dir
from rdm_flux2 import latents
from rdm_flux2.autocast_count import saved_bytes
from rdm_flux2.configs import (
    DEFAULT_CTX_LEN,
    FLUX2_VAE,
    HUB_ID_4B,
    KLEIN_4B_TRANSFORMER,
    TINY_TRANSFORMER,
    TINY_VAE,
)


def klein_plan_stats(
    variant: str = "full",
    resolution: int = 512,
    ctx_len: int = DEFAULT_CTX_LEN,
    model_dir: str | None = None,
    vae_checkpointing: bool = False,
) -> dict[str, Any]:
    """Sizes and forward FLOPs per sample of a klein generator built with these arguments.

    See :meth:`rdm_flux2.generator.Flux2KleinGenerator.plan_stats` for the keys returned.
    """
    if model_dir:
        root = resolve_model_dir(model_dir, HUB_ID_4B)
        dit_cfg = Flux2Transformer2DModel.load_config(str(root), subfolder="transformer")
        vae_cfg = AutoencoderKLFlux2.load_config(str(root), subfolder="vae")
    else:
        dit_cfg, vae_cfg = (TINY_TRANSFORMER, TINY_VAE) if variant == "tiny" else (KLEIN_4B_TRANSFORMER, FLUX2_VAE)
    side = int(resolution) // 16
    with torch.device("meta"):
        dit = Flux2Transformer2DModel.from_config(dit_cfg)
        vae = AutoencoderKLFlux2.from_config(vae_cfg)
        c = dit.config
        with FlopCounterMode(display=False) as dit_count:
            dit(
                hidden_states=torch.empty(1, side * side, c.in_channels),
                encoder_hidden_states=torch.empty(1, int(ctx_len), c.joint_attention_dim),
                timestep=torch.ones(1),
                img_ids=latents.latent_ids(side, side, "meta"),
                txt_ids=latents.text_ids(int(ctx_len), "meta"),
                return_dict=False,
            )
        with FlopCounterMode(display=False) as vae_count:
            vae.decode(torch.empty(1, vae.config.latent_channels, 2 * side, 2 * side))
        # what autograd keeps to backpropagate *through* the frozen bf16 decoder (inputs need grad)
        torch.nn.Module.to(vae, torch.bfloat16).requires_grad_(False)  # plain cast: no diffusers dtype warning
        if vae_checkpointing:
            from torch.utils.checkpoint import checkpoint

            vae.enable_gradient_checkpointing(partial(checkpoint, use_reentrant=False))
        raw = torch.empty(1, vae.config.latent_channels, 2 * side, 2 * side, dtype=torch.bfloat16, requires_grad=True)
        # training decodes under bf16 autocast: norms and what follows them are kept in fp32
        kept = saved_bytes(lambda: vae.decode(raw), autocast=True)
    return {
        "params": sum(p.numel() for p in dit.parameters()),
        "flops_per_sample": float(dit_count.get_total_flops()),
        "frozen_flops_per_sample": float(vae_count.get_total_flops()),
        "frozen_params": sum(p.numel() for p in vae.parameters()),
        "frozen_activation_bytes_per_sample": float(kept),
        # the step's contexts are drawn up front for every chunk, in fp32
        "condition_bytes_per_sample": float(int(ctx_len) * c.joint_attention_dim * 4),
        "tokens": side * side + int(ctx_len),
        "blocks": c.num_layers + c.num_single_layers,
        "width": c.num_attention_heads * c.attention_head_dim,
    }
