"""Joint (text-to-image) builds with curation and tau alignment; check_references and the CLI."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from rdm_core.artifacts import load_tensors, read_json, read_meta
from rdm_core.errors import ArtifactError, ReferenceMismatchError
from rdm_core.recipe.assemble import reference_path
from rdm_core.recipe.load import load_recipe


def _brightness(images, captions):
    return images.mean(dim=(1, 2, 3))


def _jsonl(root, n, seed):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(18, 22, 3), dtype=np.uint8)).save(root / f"{i}.png")
        rows.append(json.dumps({"image": f"{i}.png", "caption": f"caption number {i % 5}"}))
    (root / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    return root / "pairs.jsonl"


@pytest.fixture
def joint_recipe(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue ball\na green cone\n")
    train_pairs, val_pairs = _jsonl(tmp_path / "coco", 10, 0), _jsonl(tmp_path / "val", 9, 1)
    teacher = {
        "name": "pickscore_topk",
        "args": {
            "k": 2,
            "scorer": "test_joint_and_check:_brightness",
            "batch_size": 6,
            "source": {
                "name": "teacher",
                "args": {
                    "generator": "tiny_teacher",
                    "prompts": str(prompts),
                    "repeats": 4,
                    "steps": 2,
                    "device": "cpu",
                },
            },
        },
    }
    recipe = {
        "run": {"device": "cpu"},
        "generator": {"name": "tiny_teacher", "args": {"prompts": str(prompts)}},
        "encoders": {"train": ["tiny_a"], "held_out": ["tiny_c"], "variant": "tiny"},
        "references": {
            "dir": str(tmp_path / "refs"),
            "resolution": 16,
            "batch_size": 4,
            "shard_size": 8,
            "train": {
                "name": "mix",
                "args": {"sources": [teacher, {"name": "jsonl", "args": {"path": str(train_pairs)}}]},
            },
            "val": {"name": "jsonl", "args": {"path": str(val_pairs)}},
        },
        "train": {"rollout": 8, "micro_batch": 8},
        "objective": {
            "name": "mmd",
            "distance": {"reference": "nystrom", "landmarks": 6, "bandwidth_scale": 0.25},
            "balance": {"mode": "controller"},
            "joint": {
                "enabled": True,
                "text_encoder": "rdm_testing.references.refplugin:tiny_text",
                "s_txt": 1.0,
                "text_table": str(tmp_path / "generator_tau.safetensors"),
            },
        },
    }
    path = tmp_path / "joint.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def test_joint_build_aligns_tau_with_curated_mixed_rows(joint_recipe, monkeypatch):
    from rdm_references.check import check_references
    from rdm_references.pipeline import build_references
    from rdm_testing.references import refplugin

    recipe = load_recipe(joint_recipe)
    build_references(recipe)
    refs = recipe.references.dir
    manifest = read_json(f"{refs}/manifest.json")
    keys = [k for k, _, _ in manifest["sources"]["train"]["items"]]
    assert len(keys) == 6 + 10 and keys[0].startswith("0:teacher/") and keys[-1] == "1:00000009:9.png"
    tau, meta = load_tensors(f"{refs}/tau/train.safetensors")
    from rdm_references.build_sources import open_sources

    src = open_sources(recipe, ("train",))["train"]
    captions = src.captions(list(range(len(src))))
    expect = torch.nn.functional.normalize(refplugin.TinyText().encode(captions), dim=1)
    assert torch.allclose(tau["tau"], expect) and meta["n"] == 16
    header = read_meta(reference_path(recipe, "tiny_a"))
    assert header["dim"] == 6 + 3 and header["d_txt"] == 3
    assert header["beta"] == pytest.approx(header["bandwidth"] / 1.0) and header["s_txt"] == 1.0
    assert "tiny_a" in read_json(f"{refs}/floors.json")["floors"]
    gen_tau, _ = load_tensors(recipe.objective.joint.text_table)  # the generator's prompt pool, row-aligned
    pool = ["a red cube", "a blue ball", "a green cone"]
    assert torch.allclose(gen_tau["tau"], torch.nn.functional.normalize(refplugin.TinyText().encode(pool), dim=1))
    from rdm_references.text import load_text_table

    with pytest.raises(ArtifactError, match="not row-aligned"):
        load_text_table(recipe.objective.joint.text_table, pool[::-1])
    check_references(recipe)
    other_pool = joint_recipe.parent / "other_prompts.txt"
    other_pool.write_text("a blue ball\na red cube\na green cone\n")
    with pytest.raises(ReferenceMismatchError, match="not the generator's 3 prompts in order"):
        check_references(load_recipe(joint_recipe, [f"generator.args.prompts={other_pool}"]))
    marginal = load_recipe(joint_recipe, ["objective.joint.enabled=false"])
    with pytest.raises(ReferenceMismatchError, match="it is a joint reference"):
        check_references(marginal)

    from rdm_references.text import build_text_table

    build_text_table(
        recipe.objective.joint.text_table,
        pool,
        refplugin.TinyText(scale=5.0),
        "rdm_testing.references.refplugin:tiny_text",
    )
    with pytest.raises(ReferenceMismatchError, match="other text-tower weights than the reference captions"):
        check_references(recipe)
    monkeypatch.setenv("REFTEST_TEXT_SCALE", "3")  # another text tower: every tau table and reference follows
    report = build_references(recipe)
    assert {"tau:train", "tau:val", "tau:generator", "tiny_a:reference", "tiny_a:floor"} <= set(report.rebuilt)
    assert report.computed_shards == []  # image features do not depend on the text tower
    check_references(recipe)


def test_check_references_accepts_a_fresh_build_and_names_every_mismatch(make_recipe):
    from rdm_references.check import check_references
    from rdm_references.pipeline import build_references
    from rdm_testing.references import refplugin

    recipe, path = make_recipe()
    build_references(recipe)
    check_references(recipe)
    check_references(recipe, encoders={n: refplugin.build_encoder(n) for n in ("tiny_a", "tiny_b")})

    a, b = reference_path(recipe, "tiny_a"), reference_path(recipe, "tiny_b")
    backup = a.read_bytes()
    shutil.copyfile(b, a)  # another encoder's reference (and dim) in tiny_a's place
    with pytest.raises(ReferenceMismatchError) as err:
        check_references(recipe)
    msg = str(err.value)
    assert "built for encoder 'tiny_b'" in msg and "dim 5, the encoder gives 6" in msg
    assert f"rdm reference build {path} --encoders tiny_a" in msg
    a.write_bytes(backup)

    from rdm_core.recipe.assemble import load_reference
    from rdm_mmd.kernels import GaussianKernel
    from rdm_mmd.nystrom import NystromReference
    from rdm_references.shards import load_split_features, plan_shards

    feats = load_split_features(recipe.references.dir, "tiny_a", "train", plan_shards(40, 8))
    sigma = load_reference(a).header["bandwidth"]
    NystromReference.build(
        feats,
        GaussianKernel(sigma * 3),
        landmarks=8,
        encoder="tiny_a",
        bandwidth_scale=0.5,
        source_fingerprint=read_meta(a)["source_fingerprint"],
    ).save(a)
    with pytest.raises(ReferenceMismatchError, match=r"bandwidth .* the median heuristic gives"):
        check_references(recipe)
    a.write_bytes(backup)

    with pytest.raises(ReferenceMismatchError, match="bandwidth scale 0.5, the recipe uses 1.0"):
        check_references(load_recipe(path, ["objective.distance.bandwidth_scale=1.0"]))
    with pytest.raises(ReferenceMismatchError, match="8 landmarks, the recipe uses 16"):
        check_references(load_recipe(path, ["objective.distance.landmarks=16"]))
    with pytest.raises(ReferenceMismatchError, match="computed at N=8, the recipe trains at train.rollout=16"):
        check_references(load_recipe(path, ["train.rollout=16"]))
    # Without the controller the floors (and their N) are not needed.
    check_references(load_recipe(path, ["train.rollout=16", "objective.balance.mode=uniform"]))

    changed = refplugin.build_encoder("tiny_a")
    with torch.no_grad():
        changed.head.bias.add_(1.0)
    with pytest.raises(ReferenceMismatchError, match="encoder weights differ"):
        check_references(recipe, encoders={"tiny_a": changed})
    b.unlink()
    with pytest.raises(ReferenceMismatchError, match=r"tiny_b.safetensors is missing.*--encoders tiny_b"):
        check_references(recipe)


def test_run_build_cli_entry(make_recipe, capsys):
    from rdm_references.pipeline import run_build

    _, path = make_recipe()
    args = argparse.Namespace(
        recipe=str(path), encoders="tiny_c", split="train", overrides=["references.shard_size=16"]
    )
    assert run_build(args) == 0
    refs = path.parent / "recipe_refs"
    assert sorted(p.name for p in (refs / "features" / "tiny_c" / "train").iterdir()) == [
        f"shard_{k:05d}.safetensors" for k in range(3)
    ]
    assert not (refs / "features" / "tiny_c" / "val").exists()
    assert "tiny_c" in capsys.readouterr().out
