"""recipes/imagenet-irdm.yaml: planning without weights, and the PickScore baseline = the base weights."""

from __future__ import annotations

from pathlib import Path

import torch

from rdm_core.recipe.load import load_recipe
from rdm_testing.pmf import make_generator

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "imagenet-irdm.yaml"


def test_plan_sizes_the_h_model_without_its_weights():
    from rdm_gradcache.plan import make_plan

    recipe = load_recipe(RECIPE)
    plan = make_plan(recipe, "8xH200")
    assert plan.sources["generator"] == "plan_stats()"
    assert plan.memory["trainable weights (fp32)"] == 4 * 955_508_992
    assert (plan.rollout, plan.micro_batch, plan.chunks, plan.steps) == (5120, 8, 80, 4000)
    assert plan.paper["gpu_hours"] == 80.0 and plan.paper["step"] == 4000
    assert plan.memory["activations (one chunk)"] > 0 and plan.gpu_hours > 0


def test_recipe_names_the_base_as_the_pickscore_baseline():
    from rdm_core.recipe.assemble import plain

    recipe = load_recipe(RECIPE)
    args = plain(recipe.eval.args)
    assert args["pickscore"]["baseline"] == recipe.generator.weights == "data/pmf/pMF-H_FD-SIM.pth"
    assert (args["pickscore"]["num_samples"], args["pickscore"]["seed"]) == (4000, 1)
    assert (args["sw_r14"]["n"], args["mmd_r14"]["n"], recipe.eval.num_samples) == (16384, 50000, 50000)
    assert recipe.objective.balance.mode == "controller" and recipe.references.val is not None


def test_pickscore_baseline_reads_the_public_base(tmp_path):
    from omegaconf import OmegaConf

    from rdm_eval.evaluate import load_baseline

    base = make_generator(seed=1)
    base.save_weights(str(tmp_path / "base.pth"), format="public")
    student = make_generator(seed=2)
    recipe = OmegaConf.create({"generator": {"weights": str(tmp_path / "base.pth"), "weights_format": "public"}})
    load_baseline(recipe, student, str(tmp_path / "base.pth"))
    for (k, a), b in zip(
        base.trainable_module().state_dict().items(), student.trainable_module().state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
