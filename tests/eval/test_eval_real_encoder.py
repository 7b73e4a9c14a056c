"""`rdm eval` with a real encoder class from the encoders plugin (timm DINOv2, tiny config, random
weights saved to a local file and loaded through the plugin's real loading path)."""

from __future__ import annotations

import pytest
import torch

from rdm_core.artifacts import save_tensors
from rdm_core.plugins import PluginHost, set_host
from rdm_core.recipe.load import load_recipe
from rdm_testing.eval import brute
from rdm_testing.eval.eval_tiny import VAL_SHIFT, EvalTestPlugin, real_images, write_checkpoint


@pytest.fixture
def discovered_host():
    host = PluginHost(discover=True, strict=False)
    if "dinov2" not in host.registry("encoders"):
        pytest.skip("the encoders plugin does not provide dinov2 here")
    host.register_module(EvalTestPlugin(), "evaltest")
    set_host(host)
    yield host
    set_host(None)


def test_real_tiny_encoder_ratios(discovered_host, tmp_path):
    from rdm_core.recipe.assemble import build_encoders
    from rdm_eval.evaluate import evaluate

    torch.manual_seed(0)  # the tiny random init; its weights then go through a local file
    dino = discovered_host.registry("encoders").create("dinov2", variant="tiny", weights=None)
    save_tensors(tmp_path / "dinov2_tiny.safetensors", dino.backbone.state_dict())
    (tmp_path / "recipe.yaml").write_text(f"""
run: {{name: real, output_dir: {tmp_path / "runs"}, device: cpu}}
generator: {{name: tiny_gen}}
encoders: {{train: [dinov2], held_out: [tiny_c], variant: tiny, weights: {{dinov2: {tmp_path / "dinov2_tiny.safetensors"}}}}}
references: {{dir: {tmp_path / "refs"}, resolution: 16}}
eval: {{metrics: [sw_r14, mmd_r14], num_samples: 128, batch_size: 64, seed: 0}}
""")
    recipe = load_recipe(tmp_path / "recipe.yaml")
    encoders = build_encoders(recipe, "all")  # banks built exactly as the recipe builds encoders
    assert torch.allclose(encoders["dinov2"](torch.full((1, 3, 16, 16), 0.3)), dino(torch.full((1, 3, 16, 16), 0.3)))
    for split, seed, shift in (("train", 100, 0.0), ("val", 200, VAL_SHIFT)):
        images = real_images(128, seed, shift)
        with torch.no_grad():
            for name, enc in encoders.items():
                save_tensors(
                    tmp_path / "refs" / "eval" / f"{name}_{split}.safetensors",
                    {"features": enc(images)},
                    {"encoder": name, "n": 128, "seed": seed},
                )
    good = write_checkpoint(tmp_path / "runs" / "real", 1, 0.0)
    bad = write_checkpoint(tmp_path / "runs" / "real", 2, 2.0)
    r_good = evaluate(recipe, checkpoint=str(good), out_dir=tmp_path / "g").results
    r_bad = evaluate(recipe, checkpoint=str(bad), out_dir=tmp_path / "b").results
    brute.assert_metrics_as_defined(r_good, tmp_path / "refs", tmp_path / "g" / "features.safetensors")
    brute.assert_metrics_as_defined(r_bad, tmp_path / "refs", tmp_path / "b" / "features.safetensors")
    assert r_bad["sw_r14"].per_item["dinov2"] > 2 * r_good["sw_r14"].per_item["dinov2"]
    assert r_bad["mmd_r14"].value > r_good["mmd_r14"].value
