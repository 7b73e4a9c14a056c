"""The reference build on a folder of PNGs with tiny encoders: outputs, numerics, merging, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdm_core.artifacts import load_tensors, read_json, read_meta
from rdm_core.errors import RecipeError
from rdm_core.recipe.assemble import reference_path


def _direct_features(encoder_name: str, root, size: int = 16) -> torch.Tensor:
    """Brute force: list, crop and encode every image of ``root`` one by one."""
    from rdm_core.images import list_images, load_image
    from rdm_testing.references import refplugin

    enc = refplugin.build_encoder(encoder_name)
    with torch.no_grad():
        return torch.cat([enc(load_image(p, size)[None]) for p in list_images(root)])


def test_build_writes_every_artifact_row_aligned(make_recipe, image_dirs):
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    report = build_references(recipe)
    refs = report.root
    train, val = image_dirs
    assert len(report.computed_shards) == 3 * (5 + 2)  # 40 rows / 8 and 12 rows / 8, three encoders
    for name, dim in (("tiny_a", 6), ("tiny_b", 5), ("tiny_c", 4)):
        shards = sorted((refs / "features" / name / "train").glob("shard_*.safetensors"))
        assert [p.name for p in shards] == [f"shard_{k:05d}.safetensors" for k in range(5)]
        feats = torch.cat([load_tensors(p)[0]["features"] for p in shards])
        assert torch.allclose(feats, _direct_features(name, train), atol=1e-6)
        bank, meta = load_tensors(refs / "eval" / f"{name}_train.safetensors")
        assert bank["features"].shape == (20, dim) and meta["n_pool"] == 40
        assert torch.equal(bank["features"], feats[bank["indices"]])
        assert len(set(bank["indices"].tolist())) == 20
        vbank, _ = load_tensors(refs / "eval" / f"{name}_val.safetensors")
        assert torch.allclose(vbank["features"], _direct_features(name, val), atol=1e-6)  # 12 <= 20: all rows
    assert not reference_path(recipe, "tiny_c").exists()  # held-out: banks only
    header = read_meta(reference_path(recipe, "tiny_a"))
    assert header["kind"] == "nystrom" and header["encoder"] == "tiny_a" and header["dim"] == 6
    assert header["landmarks"] == 8 and header["n"] == 40 and header["bandwidth_scale"] == 0.5
    from PIL import Image

    with Image.open(refs / "real_grid.png") as grid:  # the picture runs put beside their samples
        assert grid.mode == "RGB" and max(grid.size) >= 512


def test_bandwidth_matches_float64_median(make_recipe, image_dirs):
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    build_references(recipe, encoders="tiny_b", splits=("train",))
    feats = _direct_features("tiny_b", image_dirs[0]).double().numpy()
    d2 = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    median = math.sqrt(np.median(d2[np.triu_indices(len(feats), k=1)]))  # the usual median (mean of middles)
    header = read_meta(reference_path(recipe, "tiny_b"))
    assert header["bandwidth"] == pytest.approx(0.5 * median, rel=1e-5)
    part = read_json(recipe.references.dir + "/manifest_parts/tiny_b.json")
    assert part["bandwidth"]["median"] == pytest.approx(median, rel=1e-5)


def test_floors_are_the_training_loss_of_val_draws(make_recipe):
    from rdm_core.recipe.assemble import load_reference
    from rdm_references.pipeline import build_references
    from rdm_references.shards import load_split_features, plan_shards

    recipe, _ = make_recipe()
    build_references(recipe)
    table = read_json(recipe.references.dir + "/floors.json")
    assert table["n"] == 8 and sorted(table["floors"]) == ["tiny_a", "tiny_b"]
    val = load_split_features(recipe.references.dir, "tiny_a", "val", plan_shards(12, 8)).double()
    ref = load_reference(reference_path(recipe, "tiny_a"))
    z = ref.tensors["landmarks"].double() if "landmarks" in ref.tensors else ref.tensors["Z"].double()
    alpha = ref.tensors["alpha"].double()
    sigma, k_rr = ref.header["bandwidth"], ref.header["k_rr"]
    gen = torch.Generator().manual_seed(0)
    values = []
    for _ in range(2):  # brute-force float64 V-statistic MMD with the Nystrom cross term
        g = val[torch.randperm(12, generator=gen)[:8]]
        k = lambda a, b: torch.exp(-(torch.cdist(a, b) ** 2) / (2 * sigma**2))
        values.append(float(k(g, g).mean() - 2 * (k(g, z) @ alpha).mean() + k_rr))
    assert table["floors"]["tiny_a"] == pytest.approx(sum(values) / 2, rel=1e-4, abs=1e-6)


def test_encoder_subsets_merge_into_one_manifest_and_floor_table(make_recipe):
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    build_references(recipe, encoders="tiny_b")
    first = read_json(recipe.references.dir + "/floors.json")
    assert sorted(first["floors"]) == ["tiny_b"]
    build_references(recipe, encoders=["tiny_a", "tiny_c"])
    manifest = read_json(recipe.references.dir + "/manifest.json")
    assert sorted(manifest["encoders"]) == ["tiny_a", "tiny_b", "tiny_c"]
    assert sorted(manifest["floors"]["floors"]) == ["tiny_a", "tiny_b"]
    assert manifest["floors"]["floors"]["tiny_b"] == first["floors"]["tiny_b"]
    items = manifest["sources"]["train"]["items"]
    assert len(items) == 40 and items[0][0] == "class0/img_000.png"
    assert manifest["encoders"]["tiny_a"]["spec"]["name"] == "tiny_a"


def test_second_run_recomputes_nothing(make_recipe):
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    build_references(recipe)
    again = build_references(recipe)
    assert again.computed_shards == [] and again.rebuilt == []
    assert len(again.skipped_shards) == 21


def test_bad_inputs_name_the_fix(make_recipe, tmp_path):
    from rdm_references.pipeline import build_references
    from rdm_references.sources.folder import FolderSource

    recipe, _ = make_recipe()
    with pytest.raises(RecipeError, match="choose from: tiny_a, tiny_b, tiny_c"):
        build_references(recipe, encoders="tiny_z")
    with pytest.raises(RecipeError, match="does not exist"):
        FolderSource(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match="contains no images"):
        FolderSource(str(tmp_path / "empty"))
    with pytest.raises(RecipeError, match="unknown split"):
        build_references(recipe, splits=("test",))


def test_split_runs_refuse_floors_from_an_encoder_with_other_weights(make_recipe, monkeypatch):
    from rdm_core.errors import ArtifactError
    from rdm_references.pipeline import build_references

    recipe, path = make_recipe()
    build_references(recipe, encoders="tiny_a", splits=("train",))
    assert not (reference_path(recipe, "tiny_a").parent / "floors.json").exists()
    build_references(recipe, encoders="tiny_a", splits=("val",))  # same weights: floors from the stored reference
    assert "tiny_a" in read_json(recipe.references.dir + "/floors.json")["floors"]
    monkeypatch.setenv("REFTEST_REINIT", "1")
    with pytest.raises(
        ArtifactError, match=f"build both splits in one run: `rdm reference build {path} --encoders tiny_a`"
    ):
        build_references(recipe, encoders="tiny_a", splits=("val",))
