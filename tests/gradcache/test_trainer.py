"""GradCacheTrainer on a tiny recipe: run directory, errors before step 1, joint feature."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from rdm_core.artifacts import load_tensors, read_meta
from rdm_core.checkpoints import list_checkpoints
from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError
from rdm_testing.gradcache import tiny_plugin
from rdm_testing.gradcache.project import build_references, register_tiny_plugin, run_trainer, write_recipe


@pytest.fixture(autouse=True, scope="module")
def _plugin():
    register_tiny_plugin()
    yield


_run = run_trainer


def test_run_writes_everything(tmp_path):
    build_references(tmp_path)
    (tmp_path / "refs" / "real_grid.png").write_bytes(b"\x89PNG\r\n\x1a\n real")  # as `rdm reference build` writes
    path = write_recipe(tmp_path, train={"steps": 3})
    start = tiny_plugin.TinyGen(dropout=0.1).module.state_dict()
    summary = _run(path)
    run = tmp_path / "runs" / "tiny"
    assert summary["run_dir"] == str(run) and summary["step"] == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r["raw"]) == {"gc_tiny_a", "gc_tiny_b"} and all(v == v for v in r["raw"].values())
        assert r["grad_norm"] > 0 and not r["skipped"] and r["samples_per_s"] > 0 and r["peak_memory_gb"] > 0
        assert r["lr"] == pytest.approx(1e-2)
    assert rows[0]["weights"] == {"gc_tiny_a": 1.0, "gc_tiny_b": 1.0}  # controller's initial lambdas
    assert sum(rows[1]["weights"].values()) == pytest.approx(2.0)  # softmax budget = number of encoders
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]
    model, meta = load_tensors(run / "checkpoints" / "step_0000003" / "model.safetensors")
    assert meta["generator"] == "gc-tiny" and meta["step"] == 3
    assert any(not torch.equal(model[k], v) for k, v in start.items())
    state = json.loads((run / "checkpoints" / "step_0000003" / "state.json").read_text())
    assert state["objective"]["balance"]["steps"] == 3 and state["world_size"] == 1
    # the resolved recipe, re-loadable on its own: the same run as the file it came from
    from rdm_core.recipe.load import load_recipe, to_yaml

    assert to_yaml(load_recipe(run / "recipe.yaml")) == to_yaml(load_recipe(path))
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["generator"]["name"] == "gc-tiny" and saved["train"]["steps"] == 3
    assert (run / "samples" / "real.png").read_bytes().endswith(b" real")  # the real grid beside the samples
    for png in ("samples/step_0000002.png", "samples/step_0000003.png", "loss.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RecipeError, match="--resume"):
        _run(path)


def test_bad_layout_refused(tmp_path):
    build_references(tmp_path)
    path = write_recipe(tmp_path, train={"rollout": 16, "micro_batch": 4, "chunks": 3})
    with pytest.raises(RecipeError, match="micro_batch 4 x world_size 1 x chunks 3"):
        _run(path)


def test_mismatched_reference_refused_with_rebuild_command(tmp_path):
    build_references(tmp_path, bandwidth_scale=0.5)
    path = write_recipe(tmp_path)
    with pytest.raises(ReferenceMismatchError) as info:
        _run(path)
    assert "bandwidth_scale" in info.value.problem and "rdm reference build" in info.value.fix


def test_missing_reference_refused(tmp_path):
    build_references(tmp_path)
    (tmp_path / "refs" / "gc_tiny_b.safetensors").unlink()
    with pytest.raises(ArtifactError, match="gc_tiny_b") as info:
        _run(write_recipe(tmp_path))
    assert "rdm reference build" in info.value.fix


def test_floors_at_other_n_refused(tmp_path):
    build_references(tmp_path, rollout=32)
    with pytest.raises(ArtifactError, match="N=32"):
        _run(write_recipe(tmp_path))


def test_joint_feature_and_bf16(tmp_path):
    build_references(tmp_path, joint=True)
    path = write_recipe(
        tmp_path,
        joint={"enabled": True, "text_table": str(tmp_path / "tau.safetensors")},
        balance={"mode": "uniform"},
        train={"steps": 2, "precision": "bf16", "schedule": "cosine", "warmup_steps": 1},
    )
    _run(path)
    rows = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["grad_norm"] > 0 for r in rows)
    assert rows[0]["lr"] == pytest.approx(1e-2) and rows[1]["lr"] == pytest.approx(1e-2)  # warmup 1/1, cosine at 0
    assert read_meta(tmp_path / "refs" / "gc_tiny_a.safetensors")["joint"] is True


def test_joint_recipe_against_marginal_reference_refused(tmp_path):
    build_references(tmp_path, joint=True)
    (tmp_path / "refs").rename(tmp_path / "joint_refs")
    build_references(tmp_path, joint=False)
    path = write_recipe(tmp_path, joint={"enabled": True, "text_table": str(tmp_path / "tau.safetensors")})
    with pytest.raises(ReferenceMismatchError, match="dim|joint"):
        _run(path)
