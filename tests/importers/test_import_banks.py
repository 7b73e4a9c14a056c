"""Imported evaluation banks and floor tables give what rdm-built ones give from the same features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdm_core.artifacts import read_json
from rdm_core.cli.main import main
from rdm_eval.banks import load_banks
from rdm_eval.metrics import RffMmdRatio, SlicedWassersteinRatio
from rdm_eval.rff import RffBank
from rdm_import.references import import_paths
from rdm_mmd.floors import load_floors
from rdm_references.stages import write_eval_bank
from rdm_testing.importers.authors_files import rff_dict, save, save_json, sw_dict


def _feats(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) + shift


@pytest.fixture
def features():
    return {"train": _feats(600, 5, 0), "val": _feats(300, 5, 1), "gen": _feats(300, 5, 2, shift=0.4)}


def _rdm_banks(out, features):
    for split in ("train", "val"):
        feats = torch.from_numpy(features[split]).float()
        write_eval_bank(out / "eval" / f"clip_{split}.safetensors", feats, 10**6, 0, {"encoder": "clip"})
    return load_banks(out, ["clip"])


def test_sw_banks_give_the_same_ratios(tmp_path, features):
    rdm = _rdm_banks(tmp_path / "rdm", features)
    src = tmp_path / "data/fid_stats/bundles/eval_sw"
    files = [save(src / f"clip_{s}.pt", sw_dict(features[s])) for s in ("train", "val")]
    items = import_paths(files, tmp_path / "imported")
    assert {i.kind for i in items} == {"sw_bank"} and all("seed" in i.missing for i in items)
    imported = load_banks(tmp_path / "imported", ["clip"])
    gen = {"clip": torch.from_numpy(features["gen"]).float()}
    metric = SlicedWassersteinRatio(num_projections=64, n=None)
    want = metric.evaluate(generated=gen, banks=rdm)
    have = metric.evaluate(generated=gen, banks=imported)
    assert have.per_item == want.per_item and have.value > 1.0


def test_rff_bank_gives_the_rdm_ratio_under_the_first_rows_rule(tmp_path, features):
    rdm = _rdm_banks(tmp_path / "rdm", features)
    train = torch.from_numpy(features["train"]).float()
    # rdm's own map (W, b, sigma); the authors' file averages mu_r over the first 400 rows in NumPy
    drawn = RffBank.from_train(train, features=256, mean_subsample=400, mean_rows="first")
    w, b = drawn.rff.weight.numpy(), drawn.rff.bias.numpy()
    src = save(tmp_path / "bundles/eval_rff/clip.pt", rff_dict(features["train"], w, b, drawn.rff.sigma, 400))
    _rdm_banks(tmp_path / "imported", features)
    (item,) = import_paths([src], tmp_path / "imported")
    assert item.kind == "rff_bank" and item.path.name == "clip_rff.safetensors"
    imported = load_banks(tmp_path / "imported", ["clip"])
    assert imported["clip"].rff is not None
    gen = {"clip": torch.from_numpy(features["gen"]).float()}
    metric = RffMmdRatio(features=256, mean_subsample=400, mean_rows="first")
    want = metric.evaluate(generated=gen, banks=rdm)
    have = metric.evaluate(generated=gen, banks=imported)
    assert have.extra["details"]["clip"]["rff_map"] == "stored"
    assert want.extra["details"]["clip"]["rff_map"] == "drawn"
    assert have.per_item["clip"] == pytest.approx(want.per_item["clip"], rel=1e-5)
    # the default (seeded random mean rows) differs from the authors' first-rows rule
    other = RffMmdRatio(features=256, mean_subsample=400).evaluate(generated=gen, banks=rdm)
    assert other.per_item["clip"] != pytest.approx(want.per_item["clip"], rel=1e-6)


def test_floor_tables_merged_and_parts(tmp_path, capsys):
    merged = save_json(tmp_path / "imagenet_val_floors.json", {"clip": 0.01, "mae": 0.02})
    out = tmp_path / "refs"
    assert main(["reference", "import", str(merged), "-o", str(out), "--floors-n", "64"]) == 0
    assert load_floors(out / "floors.json", expect_n=64) == {"clip": 0.01, "mae": 0.02}
    assert "draws, seed" in capsys.readouterr().err
    parts = [save_json(tmp_path / f"floors_parts/mmdr14/{e}.json", {e: v}) for e, v in (("clip", 1.5), ("dinov2", 2.5))]
    import_paths(parts, out)
    table = read_json(out / "eval" / "mmd_r14_floors.json")
    assert table["floors"] == {"clip": 1.5, "dinov2": 2.5} and table["n"] is None and table["scale"] == 1000.0
    assert [o["file"] for o in table["imported_from"]] == ["clip.json", "dinov2.json"]
