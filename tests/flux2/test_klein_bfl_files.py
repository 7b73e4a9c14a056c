"""klein from BFL's single files: the transformer file and FLUX.2-dev's ae.safetensors (tiny models)."""

from __future__ import annotations

import re

import pytest
import torch

from rdm_core.artifacts import save_tensors
from rdm_core.errors import ArtifactError
from rdm_flux2.bfl_files import bfl_ae_to_diffusers, transformer_from_bfl_file, vae_from_bfl_file
from rdm_flux2.configs import TINY_TRANSFORMER, TINY_VAE
from rdm_flux2.convert import diffusers_to_bfl
from rdm_flux2.tiny import build_tiny_transformer, build_tiny_vae


def _ldm_name(key: str, n_up: int) -> str:
    """diffusers VAE name -> the latent-diffusion name BFL's autoencoder uses (written by hand)."""
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"down_blocks\.(\d+)\.resnets\.(\d+)", r"down.\1.block.\2", key)
    key = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", r"down.\1.downsample.conv", key)
    key = re.sub(r"up_blocks\.(\d+)\.", lambda m: f"up_blocks.{n_up - 1 - int(m.group(1))}.", key)
    key = re.sub(r"up_blocks\.(\d+)\.resnets\.(\d+)", r"up.\1.block.\2", key)
    key = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", r"up.\1.upsample.conv", key)
    key = key.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
    key = key.replace("mid_block.attentions.0.group_norm", "mid.attn_1.norm")
    for new, old in (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
        key = key.replace(f"mid_block.attentions.0.{new}", f"mid.attn_1.{old}")
    return key


def _bfl_ae_state(vae) -> dict[str, torch.Tensor]:
    n_up = len(vae.config.up_block_types)
    out = {}
    for k, v in vae.state_dict().items():
        name = _ldm_name(k, n_up)
        if ".attn_1." in name and v.dim() == 2:  # BFL's attention projections are 1x1 convolutions
            v = v[:, :, None, None]
        out[name] = v.clone()
    return out


def test_bfl_autoencoder_file_loads_into_the_diffusers_vae(tmp_path):
    vae = build_tiny_vae(3)
    with torch.no_grad():
        vae.bn.running_mean.normal_()
        vae.bn.running_var.uniform_(0.5, 2.0)
    save_tensors(tmp_path / "ae.safetensors", _bfl_ae_state(vae))
    loaded = vae_from_bfl_file(tmp_path / "ae.safetensors", TINY_VAE, torch.float32)
    for k, v in vae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    z = torch.randn(2, TINY_VAE["latent_channels"], 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(z).sample, vae.decode(z).sample)


def test_bfl_transformer_file_loads_strictly(tmp_path):
    dit = build_tiny_transformer(4)
    save_tensors(tmp_path / "flux-2-klein-tiny.safetensors", diffusers_to_bfl(dit.state_dict()))
    loaded = transformer_from_bfl_file(tmp_path / "flux-2-klein-tiny.safetensors", TINY_TRANSFORMER)
    for k, v in dit.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)


def test_wrong_files_are_refused(tmp_path):
    save_tensors(tmp_path / "x.safetensors", {"img_in.weight": torch.zeros(2, 2)})
    with pytest.raises(ArtifactError, match="does not fit"):
        transformer_from_bfl_file(tmp_path / "x.safetensors", TINY_TRANSFORMER)
    with pytest.raises(ArtifactError, match="not a FLUX.2 autoencoder"):
        bfl_ae_to_diffusers({"text.weight": torch.zeros(1)}, TINY_VAE)
    bad = _bfl_ae_state(build_tiny_vae(1))
    bad.pop("decoder.conv_out.weight")
    save_tensors(tmp_path / "ae.safetensors", bad)
    with pytest.raises(ArtifactError, match="missing"):
        vae_from_bfl_file(tmp_path / "ae.safetensors", TINY_VAE, torch.float32)


def test_klein_generator_from_the_two_bfl_files_equals_the_folder_build(klein_dir, tmp_path):
    """generator.args.transformer_file + vae_file give the same one-step samples as the diffusers folder."""
    from rdm_flux2.generator import Flux2KleinGenerator

    folder = Flux2KleinGenerator(model_dir=str(klein_dir), variant="tiny", resolution=64, vae_dtype="fp32")
    save_tensors(tmp_path / "flux-2-klein.safetensors", diffusers_to_bfl(folder.transformer.state_dict()))
    save_tensors(tmp_path / "ae.safetensors", _bfl_ae_state(folder.vae))
    files = Flux2KleinGenerator(
        variant="tiny",
        resolution=64,
        vae_dtype="fp32",
        model_dir=str(klein_dir),  # configs and the Qwen3 text encoder
        transformer_file=str(tmp_path / "flux-2-klein.safetensors"),
        vae_file=str(tmp_path / "ae.safetensors"),
    )
    cond = folder.conditions_from_prompts(["a red apple", "a cat"])
    noise = torch.randn(2, *folder.noise_shape(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(files.generate(noise, cond), folder.generate(noise, cond))
    only_ae = Flux2KleinGenerator(
        model_dir=str(klein_dir),
        variant="tiny",
        resolution=64,
        vae_dtype="fp32",
        vae_file=str(tmp_path / "ae.safetensors"),
    )
    for k, v in folder.vae.state_dict().items():
        torch.testing.assert_close(only_ae.vae.state_dict()[k], v, rtol=0, atol=0)
