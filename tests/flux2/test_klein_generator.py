"""flux2-klein: one-step parity with Flux2KleinPipeline, gradients, checkpointing, precision, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from rdm_core.errors import RdmError, ShapeError, WeightsNotFoundError
from rdm_core.interfaces import Conditions, Generator, TeacherSampler

PROMPTS = ["a red cube on a table", "two dogs in the snow"]


def _noise(gen, n=2, seed=0):
    return torch.randn(n, *gen.noise_shape(), generator=torch.Generator().manual_seed(seed))


def test_protocols_and_geometry(klein):
    assert isinstance(klein, Generator) and isinstance(klein, TeacherSampler)
    assert klein.noise_shape() == (128, 4, 4)
    assert klein.trainable_module() is klein.transformer
    assert not any(p.requires_grad for p in klein.vae.parameters())


def test_context_matches_pipeline_encode_prompt(klein, klein_pipe):
    ctx = klein.encode_prompts(PROMPTS)
    ref, _ = klein_pipe.encode_prompt(PROMPTS, max_sequence_length=48)
    assert ctx.shape == (2, 48, 96)
    assert torch.equal(ctx, ref)
    # a longer context keeps the first rows (right padding, causal LM) but adds pad tokens
    long = klein.encode_prompts(PROMPTS, ctx_len=64)
    assert torch.allclose(long[:, :48], ctx, atol=1e-6)


def test_one_step_equals_pipeline_one_step(klein, klein_pipe):
    noise = _noise(klein)
    ctx = klein.encode_prompts(PROMPTS)
    with torch.no_grad():
        ours = klein.generate(noise, Conditions(inputs=ctx))
        ref = klein_pipe(
            prompt_embeds=ctx,
            latents=noise,
            num_inference_steps=1,
            height=64,
            width=64,
            guidance_scale=1.0,
            output_type="pt",
        ).images
    assert ours.shape == (2, 3, 64, 64)
    assert (ours - ref).abs().max().item() <= 1e-6
    assert 0.0 <= ours.min() and ours.max() <= 1.0


def test_one_step_latent_is_z_minus_v(klein):
    """x0 = z - v(z, ctx, t=1): checked against a direct transformer call with batched 3-D ids."""
    from rdm_flux2 import latents

    noise = _noise(klein, 1, seed=3)
    ctx = klein.encode_prompts(PROMPTS[:1])
    with torch.no_grad():
        x0 = klein.one_step_latents(noise, Conditions(inputs=ctx))
        tokens = latents.pack(noise)
        ids = latents.latent_ids(4, 4)[None]
        tids = latents.text_ids(48)[None]
        v = klein.transformer(
            hidden_states=tokens,
            encoder_hidden_states=ctx,
            timestep=torch.ones(1),
            img_ids=ids,
            txt_ids=tids,
            return_dict=False,
        )[0]
    assert torch.allclose(x0, latents.unpack(tokens - v, 4, 4), atol=0, rtol=0)
    # BN de-normalisation is exercised: the tiny VAE's stats are not the identity
    assert klein.vae.bn.running_var.sub(1).abs().max() > 0.1


def test_teacher_matches_pipeline_four_steps(klein, klein_pipe):
    noise = _noise(klein, seed=1)
    ctx = klein.encode_prompts(PROMPTS)
    ours = klein.teacher_sample(noise, Conditions(inputs=ctx), steps=4)
    ref = klein_pipe(
        prompt_embeds=ctx, latents=noise, num_inference_steps=4, height=64, width=64, output_type="pt"
    ).images
    assert (ours - ref).abs().max().item() <= 1e-6
    assert not ours.requires_grad


def test_teacher_decodes_in_chunks_without_changing_pixels(klein):
    noise = _noise(klein, 5, seed=6)
    ctx = klein.encode_prompts(PROMPTS + PROMPTS + PROMPTS[:1])
    whole = klein.teacher_sample(noise, Conditions(inputs=ctx), steps=1)
    klein.decode_tokens = 32  # 4x4 latents -> chunks of 2 samples: 2 + 2 + 1
    chunked = klein.teacher_sample(noise, Conditions(inputs=ctx), steps=1)
    with torch.no_grad():
        one_step = klein.generate(noise, Conditions(inputs=ctx))
    assert chunked.shape == (5, 3, 64, 64)
    # conv kernels pick batch-size-dependent paths: equal up to float32 rounding
    assert torch.equal(whole, one_step) and torch.allclose(chunked, whole, atol=2e-5)


def test_klein_schedule_at_512():
    """4 steps at 512 px (1024 tokens): sigmas [1, 0.9581, 0.8840, 0.7175, 0] (BFL get_schedule)."""
    import numpy as np
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    from rdm_flux2.tiny import build_scheduler

    s = build_scheduler()
    s.set_timesteps(sigmas=np.linspace(1.0, 0.25, 4), mu=compute_empirical_mu(1024, 4))
    assert torch.allclose(s.sigmas, torch.tensor([1.0, 0.9581, 0.8840, 0.7175, 0.0]), atol=1e-4)


def test_every_transformer_parameter_gets_a_gradient(klein):
    noise = _noise(klein).requires_grad_(True)
    ctx = klein.encode_prompts(PROMPTS)
    img = klein.generate(noise, Conditions(inputs=ctx))
    (img * torch.linspace(-1, 1, img.numel()).view_as(img)).sum().backward()
    named = dict(klein.transformer.named_parameters())
    missing = [n for n, p in named.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    assert all(p.grad is None for p in klein.vae.parameters())
    assert noise.grad is not None and noise.grad.abs().sum() > 0


def test_gradient_checkpointing_is_exact(klein):
    noise = _noise(klein, seed=2)
    ctx = klein.encode_prompts(PROMPTS)

    def run():
        klein.transformer.zero_grad(set_to_none=True)
        img = klein.generate(noise, Conditions(inputs=ctx))
        img.square().mean().backward()
        return img.detach(), {n: p.grad.clone() for n, p in klein.transformer.named_parameters()}

    out0, g0 = run()
    klein.set_gradient_checkpointing(True)
    assert klein.transformer.is_gradient_checkpointing
    out1, g1 = run()
    klein.set_gradient_checkpointing(False)
    assert not klein.transformer.is_gradient_checkpointing
    assert torch.equal(out0, out1)
    assert all(torch.equal(g0[n], g1[n]) for n in g0)


def test_vae_checkpointing_is_exact_and_saves_memory(klein_dir):
    from rdm_flux2.generator import Flux2KleinGenerator

    gen = Flux2KleinGenerator(model_dir=str(klein_dir), variant="tiny", resolution=64, vae_checkpointing=True)
    noise = _noise(gen, seed=4)
    cond = Conditions(inputs=gen.encode_prompts(PROMPTS))

    def run():
        gen.transformer.zero_grad(set_to_none=True)
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: kept.append(t.numel() * t.element_size()) or t, lambda t: t
        ):
            img = gen.generate(noise, cond)
        img.square().mean().backward()
        return img.detach(), {n: p.grad.clone() for n, p in gen.transformer.named_parameters()}, sum(kept)

    out0, g0, kept0 = run()
    gen.set_gradient_checkpointing(True)
    assert gen.vae.is_gradient_checkpointing and gen.transformer.is_gradient_checkpointing
    out1, g1, kept1 = run()
    assert torch.equal(out0, out1) and all(torch.equal(g0[n], g1[n]) for n in g0)
    assert kept1 < kept0 / 2
    gen.set_gradient_checkpointing(False)
    assert not gen.vae.is_gradient_checkpointing
    plain = Flux2KleinGenerator.plan_stats(variant="tiny", resolution=64)
    ckpt = Flux2KleinGenerator.plan_stats(variant="tiny", resolution=64, vae_checkpointing=True)
    assert ckpt["frozen_activation_bytes_per_sample"] < plain["frozen_activation_bytes_per_sample"] / 2


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
def test_bf16_autocast_keeps_fp32_master_weights(klein_dir):
    from rdm_flux2.generator import Flux2KleinGenerator

    gen = Flux2KleinGenerator(
        model_dir=str(klein_dir), variant="tiny", resolution=64, precision="bf16", vae_dtype="bf16"
    )
    noise = _noise(gen)
    img = gen.generate(noise, Conditions(inputs=gen.encode_prompts(PROMPTS)))
    img.float().mean().backward()
    assert torch.isfinite(img.float()).all()
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
        for p in gen.transformer.parameters()
    )


def test_fp64_trainable_module_runs_end_to_end_in_fp64(klein):
    """The trainer's fp64 mode casts the trainable module; the frozen VAE follows it."""
    klein.transformer.double()
    noise = _noise(klein).double()
    img = klein.generate(noise, Conditions(inputs=klein.encode_prompts(PROMPTS)))
    assert img.dtype == torch.float64 and next(klein.vae.parameters()).dtype == torch.float64
    img.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float64 for p in klein.transformer.parameters())


def test_in_code_tiny_equals_saved_tiny_folder(klein):
    from rdm_flux2.generator import Flux2KleinGenerator

    built = Flux2KleinGenerator(variant="tiny", resolution=64, vae_dtype="fp32")
    noise = _noise(klein)
    with torch.no_grad():
        ctx = built.encode_prompts(PROMPTS)
        assert torch.equal(ctx, klein.encode_prompts(PROMPTS))
        assert torch.equal(built.generate(noise, Conditions(inputs=ctx)), klein.generate(noise, Conditions(inputs=ctx)))


def test_meta_device_klein_4b_has_3_8755b_parameters():
    from diffusers import Flux2Transformer2DModel

    from rdm_flux2.configs import KLEIN_4B_TRANSFORMER
    from rdm_flux2.convert import diffusers_to_bfl

    with torch.device("meta"):
        model = Flux2Transformer2DModel(**KLEIN_4B_TRANSFORMER)
    n = sum(p.numel() for p in model.parameters())
    assert n == 3_875_544_576 and round(n / 1e9, 4) == 3.8755
    state = model.state_dict()
    assert len(state) == 169 and len(diffusers_to_bfl(state)) == 149


def test_bad_inputs_raise_clear_errors(klein, tmp_path, monkeypatch):
    from rdm_flux2.generator import Flux2KleinGenerator

    with pytest.raises(ShapeError, match="noise must be"):
        klein.generate(torch.randn(1, 64, 4, 4), Conditions(inputs=torch.zeros(1, 48, 96)))
    with pytest.raises(ShapeError, match="does not fit"):
        klein.generate(_noise(klein, 2), Conditions(inputs=torch.zeros(1, 48, 96)))
    with pytest.raises(ShapeError, match="context tensor"):
        klein.generate(_noise(klein, 1), Conditions(inputs=None))
    with pytest.raises(RdmError, match="multiple of 16"):
        Flux2KleinGenerator(variant="tiny", resolution=72)
    with pytest.raises(RdmError, match="variant"):
        Flux2KleinGenerator(variant="huge")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        Flux2KleinGenerator(model_dir=str(tmp_path / "nowhere"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(WeightsNotFoundError, match="FLUX.2-klein-4B.*offline"):
        Flux2KleinGenerator(hub_id="black-forest-labs/FLUX.2-klein-4B", variant="full")
    with pytest.raises(RdmError, match="context_pool"):
        klein.sample_conditions(2, torch.Generator().manual_seed(0))


def test_plan_stats_counts_flops_of_the_real_forward(klein, klein_dir):
    """Meta-device FLOP counts from configs equal a count on the real tiny modules."""
    from torch.utils.flop_counter import FlopCounterMode

    from rdm_flux2.generator import Flux2KleinGenerator

    stats = Flux2KleinGenerator.plan_stats(variant="tiny", resolution=64, ctx_len=48, context_pool="ignored.npy")
    assert stats == Flux2KleinGenerator.plan_stats(model_dir=str(klein_dir), resolution=64)  # from its config.json
    assert stats["params"] == sum(p.numel() for p in klein.transformer.parameters())
    assert stats["frozen_params"] == sum(p.numel() for p in klein.vae.parameters())
    assert stats["tokens"] == 16 + 48
    noise = _noise(klein, 1)
    with torch.no_grad(), FlopCounterMode(display=False) as dit:
        klein.one_step_latents(noise, Conditions(inputs=torch.zeros(1, 48, 96)))
    with torch.no_grad(), FlopCounterMode(display=False) as vae:
        klein.vae.decode(torch.zeros(1, 32, 8, 8))
    # the CPU flash-attention kernel has no FLOP formula, so add QK^T and AV by hand: 2 x 2 x T^2 x width per block
    cfg = klein.transformer.config
    attention = 4 * 64**2 * cfg.num_attention_heads * cfg.attention_head_dim * (cfg.num_layers + cfg.num_single_layers)
    assert stats["flops_per_sample"] == dit.get_total_flops() + attention
    # the VAE mid-block self-attention over the 8x8 latent (width 32) is uncounted on CPU likewise
    assert stats["frozen_flops_per_sample"] == vae.get_total_flops() + 4 * 64**2 * 32
    # activations kept to backpropagate through the frozen bf16 decoder: the real CPU run saves the same
    # tensors except inside the mid-block attention (fused kernel vs the meta device's math path)
    bf16_vae = torch.nn.Module.to(copy.deepcopy(klein.vae), torch.bfloat16)
    raw = torch.zeros(1, 32, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    kept = []
    # under the training autocast's policy (its own hand-counted test: tests/gradcache/test_plan_memory.py)
    from rdm_flux2.autocast_count import CudaAutocastPolicy

    with (
        torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.numel() * t.element_size()) or t, lambda t: t),
        CudaAutocastPolicy(),
    ):
        bf16_vae.decode(raw)
    assert abs(stats["frozen_activation_bytes_per_sample"] - sum(kept)) < 0.02 * sum(kept)


def test_plan_stats_of_the_real_klein_4b_config():
    from rdm_flux2.generator import Flux2KleinGenerator

    stats = Flux2KleinGenerator.plan_stats(variant="full", resolution=512, ctx_len=48)
    assert stats["params"] == 3_875_544_576 and stats["frozen_params"] == 84_046_115
    assert stats["tokens"] == 1024 + 48 and (stats["blocks"], stats["width"]) == (25, 3072)
    # single-stream weights touch all 1072 tokens (2 FLOPs each); double-stream weights touch only their
    # stream's tokens and modulation weights one vector per sample, so the exact count sits between
    attention = 4 * 1072**2 * 3072 * 25
    single = 20 * (3072 * 3072 * 3 + 3072 * 9216 * 2 + 3072 * (3072 + 9216))  # linear1 (qkv + gate/up) + linear2
    assert 2 * single * 1072 + attention < stats["flops_per_sample"] < 2 * stats["params"] * 1072 + attention
    assert 2.0e12 < stats["frozen_flops_per_sample"] < 3.0e12
