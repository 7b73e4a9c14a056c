"""The klein, FLUX.1 and Wan recipes load, validate against the registries, and state the paper's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdm_core.recipe.assemble import plain
from rdm_core.recipe.load import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
NAMES = ["flux2-klein-1step", "flux2-klein-tiny", "flux1-schnell-1step", "flux1-tiny", "wan-t2v-1step", "wan-tiny"]


@pytest.mark.parametrize("name", NAMES)
def test_recipe_validates(name):
    from rdm_core.recipe.validate import validate_recipe

    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert validate_recipe(recipe, files=name.endswith("-tiny"))  # full-size ones name user data absent here
    header = (RECIPES / f"{name}.yaml").read_text().splitlines()[0]
    assert header.startswith("#")


def test_klein_recipe_has_the_paper_values():
    r = load_recipe(RECIPES / "flux2-klein-1step.yaml")
    assert list(r.encoders.train) == [
        "inception",
        "convnext",
        "mae",
        "clip",
        "dinov3_l",
        "pe_core_l",
        "siglip2",
        "aimv2_huge",
        "webssl_dino_1b",
        "dreamsim",
    ]
    assert list(r.encoders.held_out) == ["dinov2", "siglip_v1", "cradiov3_l", "flux_vae"]
    assert (
        r.objective.joint.enabled
        and r.objective.joint.text_encoder == "siglip2_text"
        and r.objective.joint.s_txt == 1.0
    )
    d, t = r.objective.distance, r.train
    assert (d.reference, d.kernel, d.bandwidth_scale, d.landmarks) == ("nystrom", "gaussian", 0.25, 8192)
    assert (t.rollout, t.micro_batch, t.chunks, t.lr, t.grad_clip, list(t.betas), t.steps, t.checkpoint_every) == (
        10240,
        8,
        160,
        2.83e-6,
        4.0,
        [0.9, 0.95],
        180,
        20,
    )
    assert t.rollout == t.micro_batch * 8 * t.chunks
    args = plain(r.generator.args)
    assert (args["resolution"], args["ctx_len"], r.objective.balance.mode) == (512, 48, "uniform")
    assert (
        "torchrun --nproc-per-node 8 -m rdm_core train recipes/flux2-klein-1step.yaml"
        in (RECIPES / "flux2-klein-1step.yaml").read_text()
    )


def test_tiny_recipe_builds_the_tiny_generator(monkeypatch):
    from rdm_core.recipe.assemble import build_generator

    monkeypatch.chdir(RECIPES.parent)  # recipe paths are relative to the repository root

    gen = build_generator(load_recipe(RECIPES / "flux2-klein-tiny.yaml"))
    assert gen.variant == "tiny" and gen.noise_shape() == (128, 4, 4)
    assert gen.num_conditions() == 64  # the bundled prompts file, encoded in memory
