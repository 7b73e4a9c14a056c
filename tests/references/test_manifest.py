"""The manifest records per-item fingerprints and detects changed, missing and added images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rdm_core.artifacts import read_json
from rdm_core.errors import ArtifactError


def test_changed_and_missing_images_are_detected_and_only_affected_shards_rebuilt(make_recipe, image_dirs):
    from rdm_references.check import verify_sources
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    with pytest.raises(ArtifactError, match="rdm reference build"):
        verify_sources(recipe)
    build_references(recipe, encoders="tiny_a")
    assert verify_sources(recipe) == {s: {"added": [], "missing": [], "changed": []} for s in ("train", "val")}
    train, _ = image_dirs
    manifest = read_json(recipe.references.dir + "/manifest.json")
    keys = [k for k, _, _ in manifest["sources"]["train"]["items"]]
    # Rows are in sorted key order; edit one image in the last shard and delete one in the last shard.
    changed, missing = keys[-3], keys[-1]
    Image.fromarray(np.full((20, 20, 3), 7, dtype=np.uint8)).save(train / changed)
    (train / missing).unlink()
    diff = verify_sources(recipe, ("train",))["train"]
    assert diff == {"added": [], "missing": [missing], "changed": [changed]}

    report = build_references(recipe, encoders="tiny_a")
    assert report.source_changes["train"]["changed"] == [changed]
    assert report.source_changes["train"]["missing"] == [missing]
    recomputed = {(s, i) for _, s, i in report.computed_shards}
    assert recomputed == {("train", 4)}  # rows 32..38: the only shard whose items changed
    assert "tiny_a:reference" in report.rebuilt and "tiny_a:eval_train" in report.rebuilt
    assert "tiny_a:eval_val" not in report.rebuilt


def test_stat_cache_skips_rehash_but_rehash_finds_same_size_edits(make_recipe, image_dirs):
    import os

    from rdm_references.check import verify_sources
    from rdm_references.pipeline import build_references

    recipe, _ = make_recipe()
    build_references(recipe, encoders="tiny_c", splits=("train",))
    train, _ = image_dirs
    target = sorted(train.rglob("*.png"))[0]
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF  # same size; restore the mtime so only a content hash can tell
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert verify_sources(recipe, ("train",))["train"]["changed"] == []
    key = target.relative_to(train).as_posix()
    assert verify_sources(recipe, ("train",), rehash=True)["train"]["changed"] == [key]
