"""Encoders backed by transformers / diffusers classes: WebSSL-DINO 1B, C-RADIOv3-L, FLUX.1 VAE.

All three load with ``from_pretrained(<local dir>, local_files_only=True)``: either the directory
given as ``weights`` (written by ``save_pretrained``) or the Hugging Face cache snapshot of the
declared hub files. Nothing is ever loaded with ``trust_remote_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from rdm_core.errors import ShapeError
from rdm_encoders import specs
from rdm_encoders.base import FrozenEncoder, resolve_pretrained, spec_for
from rdm_encoders.loading import pretrained_dir

# -- configs (full size as published; tiny stand-ins of the same classes) -------------


def webssl_config(variant: str = "full") -> Any:
    """``Dinov2Config`` of WebSSL-DINO 1B (1536/40/24, SwiGLU) or its tiny stand-in."""
    from transformers import Dinov2Config

    if variant == "tiny":  # layerscale 1.0: with 1e-5 a random CLS barely depends on the input
        return Dinov2Config(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            use_swiglu_ffn=True,
            image_size=224,
            patch_size=14,
            layerscale_value=1.0,
        )
    return Dinov2Config(
        hidden_size=1536,
        num_hidden_layers=40,
        num_attention_heads=24,
        mlp_ratio=4,
        use_swiglu_ffn=True,
        image_size=224,
        patch_size=14,
        layerscale_value=1e-5,
        layer_norm_eps=1e-6,
        qkv_bias=True,
    )


def radio_config(variant: str = "full") -> Any:
    """``RadioConfig`` of C-RADIOv3-L (cls/register counts assumed, not read from a checkpoint) or tiny."""
    from transformers import RadioConfig

    if variant == "tiny":
        return RadioConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            patch_size=16,
            num_cls_tokens=3,
            num_registers=1,
            summary_idxs=[0, 1, 2],
            max_img_size=256,
        )
    return RadioConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        patch_size=16,
        num_cls_tokens=3,
        num_registers=7,
        summary_idxs=[0, 1, 2],
        max_img_size=2048,
    )


def flux_vae_model(variant: str = "full") -> nn.Module:
    """A random-weight FLUX.1 ``AutoencoderKL`` (16 latent channels) or its tiny stand-in.

    The tiny one keeps 4 blocks and 16 latent channels so the /8 factor and the 1024-d output stay.
    """
    from diffusers import AutoencoderKL

    if variant == "tiny":
        widths, layers, groups = (8, 8, 16, 16), 1, 4
    else:
        widths, layers, groups = (128, 256, 512, 512), 2, 32
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        block_out_channels=widths,
        layers_per_block=layers,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=groups,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


# -- encoders ----------------------------------------------------------------------------------


class WebSSLEncoder(FrozenEncoder):
    """``Dinov2Model(...).pooler_output`` (the final-LayerNorm'd CLS)."""

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(pixel_values=x).pooler_output


class RadioEncoder(FrozenEncoder):
    """``RadioModel(...).summary``: the teacher CLS tokens flattened (normalisation is internal)."""

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(pixel_values=x).summary


class FluxVAEEncoder(FrozenEncoder):
    """``latent_dist.mean`` of the FLUX.1 VAE, 4x4 patch mean, flattened (16·8·8 = 1024 at 256 px)."""

    def embed(self, x: Tensor) -> Tensor:
        mean = self.backbone.encode(x).latent_dist.mean  # raw latent: no scaling/shift factor
        b, c, h, w = mean.shape
        if h % 4 or w % 4:
            raise ShapeError(
                f"flux_vae latent {h}x{w} is not divisible by the 4x4 patch.",
                "use a resolution that is a multiple of 32",
            )
        return mean.reshape(b, c, h // 4, 4, w // 4, 4).mean(dim=(3, 5)).flatten(1)


def _from_pretrained(
    cls: Any, spec: Any, weights: str | None, subfolder: str | None = None, dtype_key: str = "dtype"
) -> Any:
    import torch

    root = pretrained_dir(spec, weights)
    # fp32 weights whatever the checkpoint's storage dtype (bf16 runs through autocast; casting the
    # weights is the battery's explicit bf16_weights option).
    kw: dict[str, Any] = {"local_files_only": True, dtype_key: torch.float32}
    if subfolder and (Path(root) / subfolder / "config.json").exists():
        kw["subfolder"] = subfolder  # a full diffusers repo layout rather than the vae folder itself
    return cls.from_pretrained(str(root), **kw)


def build_webssl_dino_1b(
    variant: str = "full", weights: str | None = None, pretrained: bool | None = None
) -> WebSSLEncoder:
    """Build ``webssl_dino_1b`` (transformers ``Dinov2Model``).

    Args:
        variant: ``full`` or ``tiny``.
        weights: a ``save_pretrained`` directory; ``None`` = the HF cache of
            ``facebook/webssl-dino1b-full2b-224`` (full variant).
        pretrained: ``False`` builds random weights from the config.
    """
    from transformers import Dinov2Model

    spec = specs.WEBSSL_DINO_1B
    if resolve_pretrained(variant, weights, pretrained, spec.name):
        model = _from_pretrained(Dinov2Model, spec, weights)
    else:
        model = Dinov2Model(webssl_config(variant))
    return WebSSLEncoder(spec_for(spec, variant, int(model.config.hidden_size)), model)


def build_cradiov3_l(variant: str = "full", weights: str | None = None, pretrained: bool | None = None) -> RadioEncoder:
    """Build ``cradiov3_l`` through transformers' native ``RadioModel`` (never remote code).

    Args:
        variant: ``full`` or ``tiny``.
        weights: a ``save_pretrained`` directory; ``None`` = the HF cache of ``nvidia/C-RADIOv3-L``.
        pretrained: ``False`` builds random weights from the (assumed) v3-L config.
    """
    from transformers import RadioModel

    spec = specs.CRADIOV3_L
    if resolve_pretrained(variant, weights, pretrained, spec.name):
        model = _from_pretrained(RadioModel, spec, weights)
    else:
        model = RadioModel(radio_config(variant))
    cfg = model.config
    n_summary = len(cfg.summary_idxs) if cfg.summary_idxs is not None else cfg.num_cls_tokens
    return RadioEncoder(spec_for(spec, variant, int(cfg.hidden_size * n_summary)), model)


def build_flux_vae(variant: str = "full", weights: str | None = None, pretrained: bool | None = None) -> FluxVAEEncoder:
    """Build ``flux_vae`` (diffusers ``AutoencoderKL``, FLUX.1 config); the decoder is dropped.

    Args:
        variant: ``full`` or ``tiny`` (tiny keeps the 1024-d output).
        weights: a directory with ``config.json`` + weights, or a repo root with a ``vae/``
            subfolder; ``None`` = the HF cache of ``black-forest-labs/FLUX.1-schnell`` (``vae/``).
        pretrained: ``False`` builds random weights.
    """
    from diffusers import AutoencoderKL

    spec = specs.FLUX_VAE
    if resolve_pretrained(variant, weights, pretrained, spec.name):
        vae = _from_pretrained(AutoencoderKL, spec, weights, subfolder="vae", dtype_key="torch_dtype")
    else:
        vae = flux_vae_model(variant)
    vae.decoder = None  # only encode() is used: saves ~50M parameters
    dim = int(vae.config.latent_channels) * (spec.resolution // 32) ** 2  # /8 latent, then 4x4 patches
    return FluxVAEEncoder(spec_for(spec, variant, dim), vae)
