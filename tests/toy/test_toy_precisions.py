"""Every ``train.precision`` the schema offers trains every shipped recipe that runs on a CPU (the
digits recipes), through the commands a user types: ``rdm reference build``, ``rdm train --set
train.precision=P``, ``rdm generate`` from the checkpoint.

Step 1's raw distances are computed before any update, from the same seeded noise and the same
initial weights, so every precision must report the fp32 numbers: fp64 to float32 rounding of the
loss (the Nystrom references are float32), bf16 to autocast rounding. The checkpoint's weights
are the master weights of that precision (float64 for fp64, float32 otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdm_core.checkpoints import load_checkpoint
from rdm_core.cli.main import main
from rdm_core.recipe.validate import CHOICES

ROOT = Path(__file__).resolve().parents[2]
PRECISIONS = CHOICES["train.precision"]  # what the schema offers
MASTER_DTYPE = {"bf16": "torch.float32", "fp32": "torch.float32", "fp64": "torch.float64"}
# step 1 raw distance vs the fp32 run's (relative)
TOLERANCE = {"fp32": 0.0, "fp64": 1e-5, "bf16": 2e-2}


def _small(tmp_path: Path, recipe: str) -> list[str]:
    sets = [
        f"run.output_dir={tmp_path}/runs",
        f"references.dir={tmp_path}/refs",
        "objective.distance.landmarks=64",
        "train.steps=2",
        "train.rollout=64",
        "train.micro_batch=32",
        "train.chunks=2",
        "train.log_every=1",
        "train.checkpoint_every=2",
        "train.sample_count=4",
    ]
    if recipe == "digits-classcond":  # the tau table is written by the reference build
        sets.append(f"objective.joint.text_table={tmp_path}/refs/class_table.safetensors")
    return [arg for s in sets for arg in ("--set", s)]


def test_the_schema_offers_exactly_the_precisions_checked_here():
    assert set(PRECISIONS) == set(MASTER_DTYPE) == set(TOLERANCE)


@pytest.mark.parametrize("recipe", ["digits-cpu", "digits-classcond"])
def test_every_precision_trains_the_shipped_recipe(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # digits-classcond names its class prompt file relative to the repository
    path = str(ROOT / "recipes" / f"{recipe}.yaml")
    small = _small(tmp_path, recipe)
    assert main(["reference", "build", path, *small]) == 0
    first_raw = {}
    for precision in PRECISIONS:
        run = ["--set", f"run.name={recipe}-{precision}", "--set", f"train.precision={precision}"]
        assert main(["train", path, *small, *run, "--no-progress"]) == 0, precision
        run_dir = tmp_path / "runs" / f"{recipe}-{precision}"
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2] and not any(r["skipped"] for r in rows), precision
        first_raw[precision] = rows[0]["raw"]
        checkpoint = run_dir / "checkpoints" / "step_0000002"
        model, _, _ = load_checkpoint(checkpoint)
        assert {str(t.dtype) for t in model.values() if t.is_floating_point()} == {MASTER_DTYPE[precision]}
        out = tmp_path / "samples" / precision
        generate = ["generate", path, *small, *run, "--checkpoint", str(checkpoint), "--num", "4", "--out", str(out)]
        assert main(generate) == 0, precision
        assert len(list(out.glob("*.png"))) >= 4
    for precision, raw in first_raw.items():
        assert raw.keys() == first_raw["fp32"].keys()
        for name, value in raw.items():
            assert value == pytest.approx(first_raw["fp32"][name], rel=TOLERANCE[precision], abs=1e-7), (
                precision,
                name,
            )
