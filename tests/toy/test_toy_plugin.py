"""Registration through the real plugin host, cheap hooks, the recipe and the `rdm toy` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rdm_core.plugins import registry
from rdm_toy.specs import HELD_OUT_ENCODERS, SPECS, TRAIN_ENCODERS

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "digits-cpu.yaml"


def test_hooks_module_imports_nothing_heavy():
    code = (
        "import sys, rdm_toy.hooks; heavy = [m for m in ('torch', 'sklearn', 'timm') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_everything_is_registered_with_specs():
    enc = registry("encoders")
    for name, spec in SPECS.items():
        assert name in enc and enc.spec(name) is spec
    assert "digits-mlp" in registry("generators")
    assert "digits" in registry("data_sources")
    assert "toy" in registry("commands")


def test_recipe_assembles_the_toy_components():
    from rdm_core.recipe.assemble import build_data_source, build_encoders, build_generator
    from rdm_core.recipe.load import load_recipe

    recipe = load_recipe(RECIPE)
    assert list(recipe.encoders.train) == list(TRAIN_ENCODERS)
    assert list(recipe.encoders.held_out) == list(HELD_OUT_ENCODERS)
    tr = recipe.train
    assert tr.rollout >= 1024 and tr.rollout == tr.micro_batch * tr.chunks and tr.chunks >= 4
    train_src = build_data_source(recipe.references.train)
    val_src = build_data_source(recipe.references.val)
    assert len(train_src) + len(val_src) == 1797
    gen = build_generator(recipe)
    images = gen.generate(torch.randn(4, *gen.noise_shape()), gen.sample_conditions(4, torch.Generator()))
    assert images.shape[-1] == recipe.references.resolution == train_src.read([0]).images.shape[-1]
    for name, enc in build_encoders(recipe, "all").items():
        assert enc(images).shape == (4, SPECS[name].dim)


def test_rdm_toy_command(tmp_path):
    from rdm_core.cli.main import main

    assert main(["toy", "train-encoders", "digits_pca", "--cache-dir", str(tmp_path)]) == 0
    assert list(tmp_path.glob("digits_pca-*.safetensors"))
    assert main(["toy", "coverage", "--split", "val"]) == 0


def test_rdm_toy_coverage_reads_png_samples(tmp_path, capsys):
    import json

    from PIL import Image

    from rdm_core.cli.main import main
    from rdm_toy.data import DigitsSource

    x = DigitsSource(split="val").read(range(40)).images
    for i, img in enumerate(x):
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(tmp_path / f"{i:04d}.png")
    capsys.readouterr()
    assert main(["toy", "coverage", "--dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["histogram"]) == 10 and abs(sum(report["histogram"]) - 1) < 1e-3


def test_rdm_toy_command_errors():
    from rdm_core.cli.main import main

    assert main(["toy", "train-encoders", "nope"]) != 0
    assert main(["toy", "coverage"]) != 0


@pytest.mark.parametrize("name", ["digits_cnn", "digits_gabor"])
def test_encoder_factory_signature_accepts_recipe_args(name):
    registry("encoders").check_args(name, {"seed": 1, "cache_dir": "/tmp/x", "retrain": False}, "test")


def test_recipe_uses_the_prototype_tuned_settings():
    from rdm_core.recipe.assemble import plain
    from rdm_core.recipe.load import load_recipe
    from rdm_toy.prototype import TUNED

    r = load_recipe(RECIPE)
    assert (r.train.steps, r.train.rollout, r.train.lr, r.train.schedule, r.train.min_lr_ratio) == (
        TUNED.steps,
        TUNED.rollout,
        TUNED.lr,
        TUNED.schedule,
        TUNED.min_lr_ratio,
    )
    assert tuple(r.train.betas) == TUNED.betas and r.train.grad_clip == TUNED.grad_clip
    assert (r.objective.distance.landmarks, r.objective.distance.bandwidth_scale) == (
        TUNED.landmarks,
        TUNED.bandwidth_scale,
    )
    assert (
        r.objective.distance.kernel == "multiscale"
        and tuple(plain(r.objective.distance.kernel_args)["scales"]) == TUNED.scales
    )
    assert r.objective.balance.mode == "uniform"  # the prototype sums self-normalised losses with weight 1
