"""`train.max_seconds` (a CPU-time budget that ends the run early), and kernel-free reference kinds."""

from __future__ import annotations

import json

import pytest

from rdm_core.checkpoints import list_checkpoints
from rdm_core.errors import RecipeError
from rdm_testing.gradcache import tiny_plugin
from rdm_testing.gradcache.project import build_references, register_tiny_plugin, run_trainer, write_recipe


@pytest.fixture(autouse=True, scope="module")
def _plugin():
    register_tiny_plugin()
    yield


_run = run_trainer


def test_budget_stops_after_first_step_over_it_and_resume_counts_only_the_new_segment(tmp_path):
    build_references(tmp_path)
    # checkpoint_every 100: only the budget can have written the step-1 checkpoint
    path = write_recipe(tmp_path, train={"steps": 50, "checkpoint_every": 100, "log_every": 100, "max_seconds": 1e-9})
    run = tmp_path / "runs" / "tiny"
    summary = _run(path)
    assert summary["step"] == 1 and summary["train_cpu_seconds"] > 1e-9
    assert [s for s, _ in list_checkpoints(run)] == [1]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] and rows[0]["train_cpu_seconds"] == pytest.approx(
        summary["train_cpu_seconds"]
    )
    # the resumed segment starts its own budget: one more step, not zero
    again = _run(path, resume=True)
    assert again["step"] == 2 and [s for s, _ in list_checkpoints(run)] == [1, 2]
    # without a budget the same recipe runs on to train.steps (3 here)
    assert _run(path, "train.max_seconds=null", "train.steps=3", resume=True)["step"] == 3
    with pytest.raises(RecipeError, match="max_seconds"):
        _run(write_recipe(tmp_path, name="bad", train={"max_seconds": 0}))


@pytest.mark.parametrize("kind", ["frechet", "sliced_wasserstein"])
def test_kernel_free_references_train_under_a_recipe_that_names_a_kernel(tmp_path, kind):
    """Their headers record kernel null; the recipe's objective.distance.kernel must not be checked for them."""
    import torch

    from rdm_mmd.frechet import FrechetReference
    from rdm_mmd.sliced import SlicedWassersteinReference

    cls = {"frechet": FrechetReference, "sliced_wasserstein": SlicedWassersteinReference}[kind]
    real = torch.rand(64, 3, tiny_plugin.RES, tiny_plugin.RES, generator=torch.Generator().manual_seed(1))
    for build in (tiny_plugin.encoder_a, tiny_plugin.encoder_b):
        enc = build()
        with torch.no_grad():
            cls.build(enc(real), seed=0, encoder=enc.spec).save(tmp_path / "refs" / f"{enc.spec.name}.safetensors")
    path = write_recipe(
        tmp_path, distance={"reference": kind, "kernel": "gaussian"}, balance={"mode": "uniform"}, train={"steps": 2}
    )
    summary = _run(path)
    assert summary["step"] == 2 and all(v == v for v in summary["last"]["raw"].values())
