"""The tiny generator recipes through the real commands: reference build, 2 training steps, generate.

Slow (about a minute per recipe on 2 cores: 14 tiny encoders, a teacher render and a Qwen3/T5
stand-in), so outside the default suite: `scripts/test -m slow tests/flux2/test_recipes_end_to_end.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rdm_core.checkpoints import latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def rdm(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rdm_core", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"rdm {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "joint"), [("flux2-klein-tiny", True), ("flux1-tiny", True), ("wan-tiny", False)])
def test_tiny_recipe_builds_references_trains_two_steps_and_generates(tmp_path, recipe, joint):
    path = f"recipes/{recipe}.yaml"
    sets = [
        "--set",
        f"references.dir={tmp_path / 'refs'}",
        "--set",
        f"run.output_dir={tmp_path / 'runs'}",
        "--set",
        "train.steps=2",
        "--set",
        "train.checkpoint_every=2",
    ]
    if joint:
        sets += ["--set", f"objective.joint.text_table={tmp_path / 'refs' / 'tau_generator.safetensors'}"]
    rdm("validate", path)
    rdm("reference", "build", path, *sets)
    rdm("train", path, *sets, "--no-progress")
    run_dir = next((tmp_path / "runs").iterdir())
    assert latest_checkpoint(run_dir).name == "step_0000002"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 2
    out = tmp_path / "samples"
    rdm(
        "generate",
        path,
        *sets,
        "--checkpoint",
        str(run_dir),
        "--prompt",
        "a red apple",
        "--per-prompt",
        "2",
        "--out",
        str(out),
    )
    assert (out / "grid.png").exists() and (out / "00001.png").exists()
