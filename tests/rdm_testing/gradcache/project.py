"""Builds a complete tiny training project on disk: references, floors, tau table, recipe YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from rdm_core.artifacts import save_tensors
from rdm_core.numerics import median_bandwidth
from rdm_mmd.floors import save_floors
from rdm_mmd.joint import joint_features
from rdm_mmd.kernels import GaussianKernel
from rdm_mmd.nystrom import NystromReference
from rdm_testing.gradcache.tiny_models import CLASSES, RES
from rdm_testing.gradcache.tiny_plugin import encoder_a, encoder_b

TEXT_DIM = 3


def build_references(root: Path, *, joint: bool = False, bandwidth_scale: float = 1.0, rollout: int = 16) -> None:
    """Nystrom references of 64 random 'real' images for both tiny encoders, plus floors."""
    refs = root / "refs"
    gen = torch.Generator().manual_seed(42)
    real = torch.rand(64, 3, RES, RES, generator=gen)
    ids = torch.randint(0, CLASSES, (64,), generator=gen)
    tau = torch.nn.functional.normalize(torch.randn(CLASSES, TEXT_DIM, generator=gen), dim=1)
    if joint:
        save_tensors(root / "tau.safetensors", {"tau": tau})
    for build in (encoder_a, encoder_b):
        enc = build()
        with torch.no_grad():
            phi = enc(real)
        if joint:
            sigma = median_bandwidth(phi, scale=bandwidth_scale, seed=0)
            feats = joint_features(phi, tau[ids], sigma / 1.0)
            ref = NystromReference.build(
                feats,
                GaussianKernel(bandwidth=sigma),
                landmarks=16,
                seed=0,
                encoder=enc.spec,
                bandwidth_scale=bandwidth_scale,
                joint={"beta": sigma, "s_txt": 1.0, "d_img": phi.shape[1], "d_txt": TEXT_DIM},
            )
        else:
            ref = NystromReference.build(
                phi, "gaussian", landmarks=16, seed=0, encoder=enc.spec, bandwidth_scale=bandwidth_scale
            )
        ref.save(refs / f"{enc.spec.name}.safetensors")
    save_floors(refs / "floors.json", {"gc_tiny_a": 0.02, "gc_tiny_b": 0.01}, n=rollout)


def write_recipe(root: Path, name: str = "tiny", **sections: Any) -> Path:
    """A tiny recipe (fp32, controller, dropout) with per-section overrides; the mmd objective's
    subsections (``distance``, ``balance``, ``joint``) are overridden by their own names."""
    recipe: dict[str, Any] = {
        "run": {"name": name, "output_dir": str(root / "runs"), "seed": 3, "device": "cpu"},
        "generator": {"name": "gc-tiny", "args": {"dropout": 0.1}},
        "encoders": {"train": ["gc_tiny_a", "gc_tiny_b"], "variant": "tiny"},
        "references": {"dir": str(root / "refs")},
        "objective": {
            "name": "mmd",
            "distance": {"reference": "nystrom", "kernel": "gaussian", "bandwidth_scale": 1.0, "landmarks": 16},
            "balance": {"mode": "controller"},
        },
        "train": {
            "steps": 5,
            "rollout": 16,
            "micro_batch": 4,
            "lr": 1e-2,
            "precision": "fp32",
            "grad_clip": 1.0,
            "checkpoint_every": 2,
            "keep_checkpoints": 5,
            "sample_count": 8,
        },
        "eval": {"metrics": []},
    }
    for section, values in sections.items():
        target = recipe["objective"] if section in ("distance", "balance", "joint") else recipe
        target.setdefault(section, {}).update(values)
    path = root / f"{name}.yaml"
    path.write_text(
        "# test recipe: python -m rdm_testing.gradcache.run_rdm train THIS\n" + yaml.safe_dump(recipe, sort_keys=False)
    )
    return path


def register_tiny_plugin() -> None:
    """Make the test-only generator and encoders resolvable by name (idempotent)."""
    from rdm_core.plugins import get_host
    from rdm_testing.gradcache import tiny_plugin

    host = get_host()
    if "gc_tiny" not in host.records:
        host.register_module(tiny_plugin, "gc_tiny")


def run_trainer(path: Path, *overrides: str, resume: bool = False) -> dict[str, Any]:
    """Run the GradCache trainer on a recipe file, as `rdm train` does (no progress bar)."""
    from rdm_core.interfaces import TrainerOptions
    from rdm_core.recipe.load import load_recipe
    from rdm_gradcache.trainer import GradCacheTrainer

    recipe = load_recipe(path, list(overrides))
    return GradCacheTrainer(recipe, TrainerOptions(recipe_ref=str(path), show_progress=False)).run(resume=resume)
