"""`rdm plan` memory: encoders counted at their fp32 weights, the step's fp32 contexts of every
chunk counted, the frozen decoder's saved activations counted under the training autocast, and
the klein recipe fitting an H200 with a margin at micro_batch 8."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rdm_core.recipe.load import load_recipe
from rdm_gradcache.plan import ENCODERS, make_plan

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def klein():
    from rdm_gradcache.plan import generator_stats

    recipe = load_recipe(RECIPES / "flux2-klein-1step.yaml")
    return recipe, generator_stats(recipe)[0]


def test_encoders_are_counted_at_fp32_and_contexts_of_every_chunk(klein):
    recipe, stats = klein
    plan = make_plan(recipe, "8xH200", stats=stats)
    expected = 4 * sum(ENCODERS[e]["params"] for e in recipe.encoders.train)
    assert plan.memory["frozen encoders (fp32)"] == pytest.approx(expected)
    # 1280 samples per GPU per step (8 x 160 chunks), each a 48 x 7680 fp32 context
    assert plan.memory["conditions of all chunks (fp32)"] == pytest.approx(8 * 160 * 48 * 7680 * 4)


def test_klein_fits_an_h200_with_decoder_checkpointing_at_micro_batch_8(klein):
    recipe, stats = klein
    assert recipe.train.micro_batch == 8 and recipe.generator.args.vae_checkpointing is True
    plan = make_plan(recipe, "8xH200", stats=stats)
    total = sum(plan.memory.values()) / 1e9
    assert total < 141 * 0.85  # at least 15% headroom
    from rdm_flux2.generator import Flux2KleinGenerator

    args = {**dict(recipe.generator.args), "vae_checkpointing": False}
    without = make_plan(recipe, "8xH200", stats=Flux2KleinGenerator.plan_stats(**args))
    assert sum(without.memory.values()) / 1e9 > 141  # why the recipe turns it on


def test_autocast_policy_keeps_norm_activations_in_fp32():
    from rdm_flux2.autocast_count import CudaAutocastPolicy, saved_bytes

    block = torch.nn.Sequential(torch.nn.GroupNorm(2, 4), torch.nn.SiLU(), torch.nn.Conv2d(4, 4, 3, padding=1))
    block = block.to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(1, 4, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    with CudaAutocastPolicy():
        normed = torch.nn.functional.group_norm(x, 2)
        conv = torch.nn.functional.conv2d(normed, block[2].weight.float())
    assert normed.dtype == torch.float32 and conv.dtype == torch.bfloat16  # CUDA autocast's policy
    plain = saved_bytes(lambda: block(x), autocast=False)
    cast = saved_bytes(lambda: block(x), autocast=True)
    # bf16: group_norm keeps x (and its stats), SiLU its input, conv its input; under autocast
    # the group_norm input and the SiLU input are fp32: 2 of the 3 activation copies double
    n = x.numel()
    assert cast - plain == pytest.approx(2 * n * 2, abs=64)


def test_decoder_activation_count_follows_autocast():
    from rdm_flux2.configs import TINY_TRANSFORMER
    from rdm_flux2.generator import Flux2KleinGenerator

    stats = Flux2KleinGenerator.plan_stats(variant="tiny", resolution=64)
    assert stats["condition_bytes_per_sample"] == 48 * TINY_TRANSFORMER["joint_attention_dim"] * 4
    ckpt = Flux2KleinGenerator.plan_stats(variant="tiny", resolution=64, vae_checkpointing=True)
    assert ckpt["frozen_activation_bytes_per_sample"] < stats["frozen_activation_bytes_per_sample"]
