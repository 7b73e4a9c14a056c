"""`rdm eval`/`rdm generate --checkpoint` read the authors' student container and rdm run directories alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rdm_core.checkpoints import load_generator_weights, save_checkpoint
from rdm_core.cli.main import main
from rdm_core.errors import ArtifactError
from rdm_core.recipe.assemble import build_encoder, build_generator
from rdm_core.recipe.load import load_recipe
from rdm_flux2.convert import diffusers_to_bfl
from rdm_references.stages import write_eval_bank

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "flux2-klein-tiny.yaml")


def _sets(tmp_path: Path) -> list[str]:
    pairs = {
        "references.dir": tmp_path / "refs",
        "run.output_dir": tmp_path / "runs",
        "encoders.train": "[clip]",
        "encoders.held_out": "[dinov2]",
        "eval.num_samples": 32,
        "eval.metrics": "[sw_r14,mmd_r14]",
        "eval.args": "{sw_r14: {num_projections: 64}, mmd_r14: {features: 256}}",
    }
    out = []
    for k, v in pairs.items():
        out += ["--set", f"{k}={v}"]
    return out


@pytest.fixture
def student(tmp_path):
    """A perturbed tiny klein transformer saved two ways, plus eval banks for two tiny encoders."""
    recipe = load_recipe(RECIPE, [s for s in _sets(tmp_path) if s != "--set"])
    gen = build_generator(recipe)
    torch.manual_seed(7)
    with torch.no_grad():
        for p in gen.trainable_module().parameters():
            p.add_(0.02 * torch.randn_like(p))
    state = {k: v.detach().clone() for k, v in gen.trainable_module().state_dict().items()}
    run_dir = tmp_path / "runs" / "student-run"
    save_checkpoint(run_dir, 3, state, {}, {})
    pth = tmp_path / "flux2_klein_1step_rdm_s180.pth"
    torch.save({"model": {f"model.{k}": v for k, v in diffusers_to_bfl(state).items()}, "step": 180}, pth)
    images = torch.rand(96, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for name in ("clip", "dinov2"):
        with torch.no_grad():
            feats = build_encoder(recipe, name)(images).float()
        for split, rows in (("train", feats[:64]), ("val", feats[64:])):
            write_eval_bank(
                tmp_path / "refs" / "eval" / f"{name}_{split}.safetensors", rows, 10**6, 0, {"encoder": name}
            )
    return {"state": state, "run_dir": run_dir, "pth": pth}


def _eval(tmp_path: Path, checkpoint: Path, out: str) -> dict:
    rc = main(["eval", RECIPE, "--checkpoint", str(checkpoint), *_sets(tmp_path), "--out", str(tmp_path / out)])
    assert rc == 0
    return json.loads((tmp_path / out / "eval.json").read_text())


def test_eval_of_the_authors_pth_equals_the_run_directory(tmp_path, student):
    from_run = _eval(tmp_path, student["run_dir"], "run")
    from_pth = _eval(tmp_path, student["pth"], "pth")
    for metric in ("sw_r14", "mmd_r14"):
        assert from_pth["metrics"][metric]["per_item"] == from_run["metrics"][metric]["per_item"]
        assert set(from_pth["metrics"][metric]["per_item"]) == {"clip", "dinov2"}
    # and the student is not the base: its numbers differ from the recipe's base weights
    rc = main(["eval", RECIPE, "--base", *_sets(tmp_path), "--out", str(tmp_path / "base")])
    assert rc == 0
    base = json.loads((tmp_path / "base" / "eval.json").read_text())
    assert base["metrics"]["sw_r14"]["per_item"] != from_pth["metrics"]["sw_r14"]["per_item"]


def test_checkpoint_loader_puts_the_same_weights_in(tmp_path, student):
    recipe = load_recipe(RECIPE, [s for s in _sets(tmp_path) if s != "--set"])
    for source in (student["run_dir"], student["pth"]):
        gen = build_generator(recipe)
        load_generator_weights(source, gen)
        for k, v in gen.trainable_module().state_dict().items():
            torch.testing.assert_close(v, student["state"][k], rtol=0, atol=0)


def test_generator_weights_accepts_the_authors_pth(tmp_path, student):
    recipe = load_recipe(RECIPE, [f"generator.weights={student['pth']}"])
    gen = build_generator(recipe)
    k = next(iter(student["state"]))
    torch.testing.assert_close(gen.trainable_module().state_dict()[k], student["state"][k], rtol=0, atol=0)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    recipe = load_recipe(RECIPE)
    bad = tmp_path / "other.pth"
    torch.save({"model": {"model.double_blocks.0.img_attn.qkv.weight": torch.zeros(3, 3)}, "step": 1}, bad)
    with pytest.raises(ArtifactError):
        load_generator_weights(bad, build_generator(recipe))
