"""Fixtures for the reference-build tests: a test plugin host, PNG folders and recipe files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def test_host():
    from rdm_core.plugins import set_host
    from rdm_testing.references import refplugin

    refplugin.install()
    yield
    set_host(None)


def write_pngs(root: Path, n: int, seed: int, nested: bool = True) -> list[Path]:
    """``n`` small random RGB PNGs of varying aspect ratios (some in subfolders), plus junk files."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = root / (f"class{i % 3}" if nested else "")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(16, 40)), int(rng.integers(16, 40))
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        p = sub / f"img_{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    (root / "notes.txt").write_text("not an image")
    (root / "class0" / "labels.json").write_text("{}") if nested else None
    return paths


@pytest.fixture
def image_dirs(tmp_path):
    train, val = tmp_path / "train", tmp_path / "val"
    write_pngs(train, 40, seed=0)
    write_pngs(val, 12, seed=1)
    return train, val


def recipe_text(train: Path, val: Path | None, refs: Path, **extra: str) -> str:
    val_block = f"  val: {{name: folder, args: {{root: {val}}}}}\n" if val else ""
    text = f"""# rdm reference build THIS_FILE   (tiny test encoders, CPU)
run: {{device: cpu}}
generator: {{name: tiny_teacher}}
encoders: {{train: [tiny_a, tiny_b], held_out: [tiny_c], variant: tiny, batch_size: 4}}
references:
  dir: {refs}
  train: {{name: folder, args: {{root: {train}}}}}
{val_block}  resolution: 16
  batch_size: 4
  shard_size: 8
  eval_bank_size: 20
train: {{rollout: 8, micro_batch: 8}}
objective:
  name: mmd
  distance: {{reference: nystrom, landmarks: 8, bandwidth_scale: 0.5, seed: 0}}
  balance: {{mode: controller, floor_draws: 2}}
"""
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    return text


@pytest.fixture
def make_recipe(tmp_path, image_dirs):
    """Write a recipe YAML for the PNG folders and load it (so the rebuild command names the file)."""
    from rdm_core.recipe.load import load_recipe

    train, val = image_dirs

    def make(name: str = "recipe", refs: Path | None = None, overrides: list[str] | None = None, with_val: bool = True):
        path = tmp_path / f"{name}.yaml"
        path.write_text(recipe_text(train, val if with_val else None, refs or tmp_path / f"{name}_refs"))
        return load_recipe(path, overrides), path

    return make
