"""A whole authors' ``data/fid_stats`` tree imports with one command and trains with no rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rdm_core.artifacts import read_meta, save_tensors
from rdm_core.cli.main import main
from rdm_core.errors import RecipeError, ReferenceMismatchError
from rdm_core.recipe.load import load_recipe
from rdm_import.references import import_paths
from rdm_references.check import check_references
from rdm_testing.gradcache.project import register_tiny_plugin, run_trainer, write_recipe
from rdm_testing.gradcache.tiny_models import RES
from rdm_testing.gradcache.tiny_plugin import encoder_a, encoder_b
from rdm_testing.importers.authors_files import pool_dict, rff_dict, save, save_joint, save_json, save_nystrom, sw_dict

ENCODERS = {"gc_tiny_a": encoder_a, "gc_tiny_b": encoder_b}


@pytest.fixture(autouse=True)
def _plugin():
    register_tiny_plugin()
    yield


def _features(seed: int, n: int = 96) -> dict[str, np.ndarray]:
    images = torch.rand(n, 3, RES, RES, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return {name: build()(images).double().numpy() for name, build in ENCODERS.items()}


def _authors_tree(root: Path) -> Path:
    stats = root / "data" / "fid_stats"
    train, val = _features(1), _features(2)
    for enc in ENCODERS:
        save(stats / "pools" / f"{enc}_train.pt", pool_dict(train[enc]))
        save(stats / "pools" / f"{enc}_val.pt", pool_dict(val[enc]))
        save(stats / "sigma" / f"{enc}.pt", {"sigma": 1.0, "scale": 1.0})
        save_nystrom(stats / "bundles/nystrom" / f"{enc}_nystrom_M4096.pt", train[enc], 16)
        for split, feats in (("train", train[enc]), ("val", val[enc])):
            save(stats / "bundles/eval_sw" / f"{enc}_{split}.pt", sw_dict(feats))
        rng = np.random.default_rng(0)
        w, b = rng.normal(size=(train[enc].shape[1], 32)), rng.uniform(0, 2 * np.pi, 32)
        save(stats / "bundles/eval_rff" / f"{enc}.pt", rff_dict(train[enc], w, b, 1.0))
        save_json(stats / "floors_parts/pid" / f"{enc}.json", {enc: 0.01})
        save_json(stats / "floors_parts/mmdr14" / f"{enc}.json", {enc: 1.0})
    return stats


def test_authors_tree_imports_and_trains_without_rebuild(tmp_path, capsys):
    _authors_tree(tmp_path)
    rc = main(["reference", "import", str(tmp_path / "data"), "-o", str(tmp_path / "refs"), "--floors-n", "16"])
    assert rc == 0, capsys.readouterr().err
    refs = tmp_path / "refs"
    for enc in ENCODERS:
        for rel in (
            f"{enc}.safetensors",
            f"eval/{enc}_train.safetensors",
            f"eval/{enc}_val.safetensors",
            f"eval/{enc}_rff.safetensors",
            f"features/{enc}_train.safetensors",
            f"bandwidth/{enc}.json",
        ):
            assert (refs / rel).is_file(), rel
    assert json.loads((refs / "floors.json").read_text())["n"] == 16
    record = json.loads((refs / "imported.json").read_text())["files"]
    assert record["gc_tiny_a.safetensors"]["source"] == "gc_tiny_a_nystrom_M4096.pt"
    assert record["floors.json"]["kind"] == "floors"
    path = write_recipe(tmp_path, train={"steps": 1})  # references.dir = tmp_path/refs, controller on
    check_references(load_recipe(path))
    summary = run_trainer(path)
    assert summary is not None
    rows = (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["grad_norm"] > 0


def test_floors_without_n_are_refused_by_training(tmp_path):
    _authors_tree(tmp_path)
    import_paths([tmp_path / "data" / "fid_stats"], tmp_path / "refs")
    path = write_recipe(tmp_path, train={"steps": 1})
    with pytest.raises(ReferenceMismatchError, match="floors-n"):
        check_references(load_recipe(path))


def test_joint_tree_trains_a_joint_recipe(tmp_path):
    stats = tmp_path / "data" / "fid_stats"
    train = _features(3)
    tau = np.random.default_rng(4).normal(size=(96, 3))
    tau /= np.linalg.norm(tau, axis=1, keepdims=True)
    for enc in ENCODERS:
        save_joint(stats / "bundles/nystrom_joint" / f"{enc}_joint_M4096.pt", train[enc], tau, 16)
        save(stats / "pools_joint" / f"{enc}.pt", pool_dict(train[enc]))
    items = import_paths([stats], tmp_path / "refs")
    assert sorted(i.kind for i in items) == ["joint", "joint", "pool", "pool"]
    assert read_meta(tmp_path / "refs" / "gc_tiny_a.safetensors")["bandwidth_scale"] == 0.25
    table = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    save_tensors(tmp_path / "tau.safetensors", {"tau": table})
    path = write_recipe(
        tmp_path,
        joint={"enabled": True, "text_table": str(tmp_path / "tau.safetensors"), "s_txt": 1.0},
        distance={"bandwidth_scale": 0.25},
        balance={"mode": "uniform"},
        train={"steps": 1},
    )
    run_trainer(path)


def test_a_tree_with_both_layouts_needs_a_choice(tmp_path):
    _authors_tree(tmp_path)
    stats = tmp_path / "data" / "fid_stats"
    tau = np.eye(3)[np.arange(96) % 3]
    save_joint(stats / "bundles/nystrom_joint/gc_tiny_a_joint_M4096.pt", _features(5)["gc_tiny_a"], tau, 8)
    with pytest.raises(RecipeError, match="--layout"):
        import_paths([stats], tmp_path / "refs")
    items = import_paths([stats], tmp_path / "joint_refs", layout="joint")
    assert [i.kind for i in items] == ["joint"]
