"""Tiny FLUX.1 and Wan 2.1 generators: pipeline parity, images/frames with gradients, conditions, weights."""

from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ArtifactError, RdmError, ShapeError
from rdm_core.interfaces import Conditions, Generator, TeacherSampler, as_image_batch

PROMPTS = ["a red cube", "two dogs in the snow"]


def _all_grads(module):
    return [n for n, p in module.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]


def test_flux1_one_step_matches_pipeline_and_backprops(flux1_dir):
    from diffusers import FluxPipeline

    from rdm_flux1.generator import Flux1Generator, pack, unpack

    gen = Flux1Generator(model_dir=str(flux1_dir), variant="tiny", resolution=64, ctx_len=32)
    assert isinstance(gen, Generator) and isinstance(gen, TeacherSampler)
    assert gen.noise_shape() == (16, 8, 8)
    pipe = FluxPipeline.from_pretrained(str(flux1_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(2, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(unpack(pack(noise), 8, 8), noise)
    ctx, pooled = gen.encode_prompts(PROMPTS)
    ref_ctx, ref_pooled, _ = pipe.encode_prompt(PROMPTS, max_sequence_length=32)
    assert ctx.shape == (2, 32, 32) and pooled.shape == (2, 32)
    assert torch.allclose(ctx, ref_ctx, atol=1e-5) and torch.allclose(pooled, ref_pooled, atol=1e-5)
    cond = Conditions(inputs=(ctx, pooled))
    with torch.no_grad():
        ref = pipe(
            prompt_embeds=ctx,
            pooled_prompt_embeds=pooled,
            latents=pack(noise),
            num_inference_steps=1,
            height=64,
            width=64,
            max_sequence_length=32,
            output_type="pt",
        ).images
        teacher_ref = pipe(
            prompt_embeds=ctx,
            pooled_prompt_embeds=pooled,
            latents=pack(noise),
            num_inference_steps=3,
            height=64,
            width=64,
            max_sequence_length=32,
            output_type="pt",
        ).images
    img = gen.generate(noise, cond)
    assert img.shape == (2, 3, 64, 64) and (img.detach() - ref).abs().max() <= 1e-6
    assert (gen.teacher_sample(noise, cond, 3) - teacher_ref).abs().max() <= 1e-6
    (img * torch.linspace(-1, 1, img.numel()).view_as(img)).sum().backward()
    assert not _all_grads(gen.transformer)
    assert all(p.grad is None for p in gen.vae.parameters())


def test_flux1_dev_guidance_conditions_and_weights(tmp_path):
    from rdm_flux1.generator import Flux1Generator

    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    gen = Flux1Generator(variant="tiny", resolution=32, ctx_len=16, prompts=str(tmp_path / "p.txt"))
    cond = gen.sample_conditions(3, torch.Generator().manual_seed(1))
    assert cond.inputs[0].shape == (3, 16, 32) and cond.inputs[1].shape == (3, 32) and len(cond.captions) == 3
    img = gen.generate(torch.randn(3, *gen.noise_shape()), cond)
    assert img.shape == (3, 3, 32, 32)
    gen.save_weights(str(tmp_path / "w.safetensors"))
    other = Flux1Generator(variant="tiny", resolution=32, seed=9)
    other.load_weights(str(tmp_path / "w.safetensors"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(gen.transformer.state_dict().values(), other.transformer.state_dict().values(), strict=True)
    )
    with pytest.raises(RdmError, match="guidance"):
        Flux1Generator(variant="tiny", flavor="dev")  # tiny weights are schnell-like
    with pytest.raises(ShapeError, match="tuple"):
        gen.generate(torch.randn(1, *gen.noise_shape()), Conditions(inputs=torch.zeros(1, 16, 32)))
    with pytest.raises(RdmError, match="prompts file"):
        Flux1Generator(variant="tiny", resolution=32).sample_conditions(1, torch.Generator())


def test_flux1_dev_guidance_embedding_is_used(monkeypatch):
    """A dev-like tiny transformer receives the guidance value (x1000 inside the model)."""
    from rdm_flux1 import configs
    from rdm_flux1.generator import Flux1Generator

    monkeypatch.setitem(configs.TINY_TRANSFORMER, "guidance_embeds", True)
    gen = Flux1Generator(variant="tiny", flavor="dev", resolution=32, ctx_len=16, guidance=3.5)
    cond = gen.conditions_from_prompts(PROMPTS[:1])
    noise = torch.randn(1, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = gen.generate(noise, cond)
        gen.guidance = 1.0
        b = gen.generate(noise, cond)
    assert (a - b).abs().max() > 0


def test_wan_one_step_video_matches_pipeline_and_backprops(wan_dir):
    from diffusers import WanPipeline

    from rdm_wan.generator import WanGenerator

    gen = WanGenerator(model_dir=str(wan_dir), variant="tiny", height=32, width=32, num_frames=5, ctx_len=16)
    assert isinstance(gen, Generator) and isinstance(gen, TeacherSampler)
    assert gen.noise_shape() == (16, 2, 4, 4)
    pipe = WanPipeline.from_pretrained(str(wan_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(2, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    ctx = gen.encode_prompts(PROMPTS)
    ref_ctx, _ = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=False, max_sequence_length=16)
    assert ctx.shape == (2, 16, 32) and torch.allclose(ctx, ref_ctx, atol=1e-5)
    with torch.no_grad():
        ref = pipe(
            prompt_embeds=ctx,
            latents=noise,
            num_inference_steps=1,
            height=32,
            width=32,
            num_frames=5,
            guidance_scale=1.0,
            max_sequence_length=16,
            output_type="pt",
        ).frames
    video = gen.generate(noise, Conditions(inputs=ctx))
    assert video.shape == (2, 3, 5, 32, 32)
    assert (video.detach() - ref.permute(0, 2, 1, 3, 4)).abs().max() <= 1e-5
    assert as_image_batch(video).shape == (10, 3, 32, 32)
    (video * torch.linspace(-1, 1, video.numel()).view_as(video)).sum().backward()
    assert not _all_grads(gen.transformer)
    assert all(p.grad is None for p in gen.vae.parameters())


def test_wan_conditions_teacher_weights_and_errors(tmp_path):
    from rdm_wan.generator import WanGenerator

    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    gen = WanGenerator(variant="tiny", height=32, width=32, num_frames=5, ctx_len=16, prompts=str(tmp_path / "p.txt"))
    cond = gen.sample_conditions(2, torch.Generator().manual_seed(0))
    noise = torch.randn(2, *gen.noise_shape())
    video = gen.teacher_sample(noise, cond, 2)
    assert video.shape == (2, 3, 5, 32, 32) and not video.requires_grad
    gen.save_weights(str(tmp_path / "w.safetensors"))
    other = WanGenerator(variant="tiny", height=32, width=32, num_frames=5, seed=4)
    other.load_weights(str(tmp_path / "w.safetensors"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(gen.transformer.state_dict().values(), other.transformer.state_dict().values(), strict=True)
    )
    with pytest.raises(RdmError, match="4k\\+1"):
        WanGenerator(variant="tiny", num_frames=6)
    with pytest.raises(ShapeError, match="noise must be"):
        gen.generate(torch.randn(2, 16, 4, 4), cond)
    from rdm_core.artifacts import save_tensors

    save_tensors(tmp_path / "bad.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(ArtifactError, match="does not match"):
        gen.load_weights(str(tmp_path / "bad.safetensors"))


def test_rdm_generate_writes_video_strips(tmp_path):
    from pathlib import Path

    from PIL import Image

    from rdm_core.cli.main import main

    recipe = str(Path(__file__).resolve().parents[2] / "recipes" / "wan-tiny.yaml")
    out = tmp_path / "wan"
    assert main(["generate", recipe, "--base", "--prompt", "a boat", "--prompt", "a fish", "--out", str(out)]) == 0
    assert Image.open(out / "00000.png").size == (5 * 32, 32)  # five frames side by side
    assert (out / "grid.png").exists()


def test_real_size_configs_on_meta_device():
    """FLUX.1 (12 B class) and Wan 2.1 T2V 1.3B built from the shipped configs, no memory used."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel, WanTransformer3DModel

    from rdm_flux1.configs import FLUX1_TRANSFORMER, FLUX1_VAE
    from rdm_wan.configs import WAN_1_3B_TRANSFORMER

    with torch.device("meta"):
        flux = FluxTransformer2DModel(**FLUX1_TRANSFORMER)
        vae = AutoencoderKL(**FLUX1_VAE)
        wan = WanTransformer3DModel(**WAN_1_3B_TRANSFORMER)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert round(count(flux) / 1e9, 2) == 11.89 and round(count(vae) / 1e6, 1) == 83.8
    assert round(count(wan) / 1e9, 2) == 1.42
