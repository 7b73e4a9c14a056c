"""klein from Black Forest Labs' single files, the layout the paper's authors load.

BFL ships the klein transformer as one file (``flux-2-klein-4b.safetensors``, BFL key names,
no prefix) and the FLUX.2 autoencoder as FLUX.2-dev's ``ae.safetensors`` (the latent-diffusion
naming of encoder/decoder blocks, plus the latent BatchNorm statistics ``bn.*``). This module
turns both into diffusers modules: the transformer through diffusers' own BFL converter, the
autoencoder through diffusers' latent-diffusion VAE converter plus the two pieces that converter
does not know (the quantisation convolutions when BFL nests them in the encoder/decoder, and
``bn``). Every load is strict: a key that does not map is refused, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import ArtifactError, WeightsNotFoundError

# BFL nests the 1x1 quantisation convolutions inside the encoder/decoder in some releases
_NESTED = {"encoder.quant_conv.": "quant_conv.", "decoder.post_quant_conv.": "post_quant_conv."}


def _read(path: str | Path, what: str) -> dict[str, Tensor]:
    from rdm_core.artifacts import load_tensors

    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(
            f"{what} {p} does not exist.", f"download it, or point generator.args at the right {what}"
        )
    tensors, _ = load_tensors(p)
    return tensors


def bfl_ae_to_diffusers(state: dict[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """BFL ``ae.safetensors`` names -> ``AutoencoderKLFlux2`` names.

    Raises:
        ArtifactError: the file holds keys outside the encoder/decoder/quantisation/``bn`` groups.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    flat: dict[str, Tensor] = {}
    for key, value in state.items():
        for old, new in _NESTED.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        flat[key] = value
    unknown = [k for k in flat if not k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "bn."))]
    if unknown:
        raise ArtifactError(
            f"not a FLUX.2 autoencoder file (unexpected keys like {unknown[:3]}).",
            "pass FLUX.2-dev's ae.safetensors as generator.args.vae_file",
        )
    out = convert_ldm_vae_checkpoint(flat, dict(config))
    out.update({k: v for k, v in flat.items() if k.startswith("bn.")})
    return out


def load_strict(module: torch.nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    """``load_state_dict`` that names missing/unexpected keys in one :class:`ArtifactError`."""
    fix = (
        f"pass the {what} file of the same model (klein 4B: flux-2-klein-4b.safetensors; AE: FLUX.2-dev ae.safetensors)"
    )
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ArtifactError(f"{path} does not fit the {what} ({detail}).", fix) from None
    if result.missing_keys or result.unexpected_keys:
        raise ArtifactError(
            f"{path} does not fit the {what}: missing {result.missing_keys[:3]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:3]} ({len(result.unexpected_keys)}).",
            fix,
        )


def transformer_from_bfl_file(path: str | Path, config: dict[str, Any]) -> Any:
    """A ``Flux2Transformer2DModel`` (fp32) with the weights of a BFL single file."""
    from diffusers import Flux2Transformer2DModel

    from rdm_flux2.convert import to_diffusers_state

    state = to_diffusers_state(_read(path, "transformer_file"), "auto")
    model = Flux2Transformer2DModel.from_config(dict(config))
    load_strict(model, state, path, "klein transformer")
    return model.float()


def vae_from_bfl_file(path: str | Path, config: dict[str, Any], dtype: torch.dtype) -> Any:
    """An ``AutoencoderKLFlux2`` with the weights of BFL's ``ae.safetensors``."""
    from diffusers import AutoencoderKLFlux2

    model = AutoencoderKLFlux2.from_config(dict(config))
    load_strict(model, bfl_ae_to_diffusers(_read(path, "vae_file"), model.config), path, "FLUX.2 autoencoder")
    return model.to(dtype)


def _configs(variant: str, model_dir: str | None, hub_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(transformer config, VAE config): the folder's when ``model_dir`` has them, else rdm's tables."""
    from rdm_core.artifacts import read_json
    from rdm_flux2 import configs

    if variant == "tiny":
        dit, vae = dict(configs.TINY_TRANSFORMER), dict(configs.TINY_VAE)
    else:
        dit = dict(configs.KLEIN_9B_TRANSFORMER if "9B" in hub_id else configs.KLEIN_4B_TRANSFORMER)
        vae = dict(configs.FLUX2_VAE)
    if model_dir:
        for sub, target in (("transformer", dit), ("vae", vae)):
            cfg = Path(model_dir) / sub / "config.json"
            if cfg.is_file():
                target.clear()
                target.update({k: v for k, v in read_json(cfg).items() if not k.startswith("_")})
    return dit, vae


def build_from_single_files(
    transformer_file: str, vae_file: str, *, variant: str, model_dir: str | None, hub_id: str, vae_dtype: str
) -> tuple[Any, Any]:
    """The klein transformer (fp32) and VAE from BFL's two files."""
    from rdm_diffusers.loading import parse_dtype

    dit_cfg, vae_cfg = _configs(variant, model_dir, hub_id)
    dtype = parse_dtype(("bf16" if variant == "full" else "fp32") if vae_dtype == "auto" else vae_dtype)
    return transformer_from_bfl_file(transformer_file, dit_cfg), vae_from_bfl_file(vae_file, vae_cfg, dtype)


def replace_from_single_file(generator: Any, transformer_file: str | None, vae_file: str | None) -> None:
    """Put the weights of one BFL file into an already-built module (same config)."""
    from rdm_flux2.convert import to_diffusers_state

    if transformer_file:
        state = to_diffusers_state(_read(transformer_file, "transformer_file"), "auto")
        load_strict(generator.transformer, state, transformer_file, "klein transformer")
    if vae_file:
        converted = bfl_ae_to_diffusers(_read(vae_file, "vae_file"), generator.vae.config)
        load_strict(generator.vae, converted, vae_file, "FLUX.2 autoencoder")
