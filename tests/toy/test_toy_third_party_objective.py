"""A third-party objective (the energy distance of ``rdm_testing.energy_objective``, registered
in-process like an installed plugin) trains the shipped digits recipe through ``rdm validate`` and
``rdm train``: the trainer (rdm_gradcache) is unchanged and knows nothing about it."""

from __future__ import annotations

import ast
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rdm_core.cli.main import main
from rdm_core.interfaces import ObjectiveContext
from rdm_core.plugins import get_host, set_host
from rdm_core.recipe.assemble import build_encoders
from rdm_core.recipe.load import load_recipe
from rdm_testing import subprocess_env
from rdm_testing.energy_objective import EnergyObjective, energy_host

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "digits-cpu.yaml")


@pytest.fixture
def host():
    previous = get_host()
    set_host(energy_host())
    yield
    set_host(previous)


def _sets(tmp_path: Path, steps: int) -> list[str]:
    sets = [
        "objective.name=energy",  # switching objective starts the section afresh: no MMD keys
        "objective.real_samples=256",
        f"run.output_dir={tmp_path}/runs",
        "run.name=energy",
        f"train.steps={steps}",
        "train.rollout=256",
        "train.micro_batch=128",
        "train.chunks=2",
        "train.log_every=1",
        "train.checkpoint_every=4",
        "train.sample_count=0",
    ]
    return [arg for s in sets for arg in ("--set", s)]


def brute_energy(x: torch.Tensor, y: torch.Tensor) -> float:
    """The energy distance by explicit pair loops in float64 (independent of the plugin's GEMM form)."""
    x, y = x.double(), y.double()

    def mean_pair(a: torch.Tensor, b: torch.Tensor) -> float:
        return sum(float((a[i] - b[j]).norm()) for i, j in itertools.product(range(len(a)), range(len(b)))) / (
            len(a) * len(b)
        )

    return 2 * mean_pair(x, y) - mean_pair(x, x) - mean_pair(y, y)


def test_the_loss_is_the_energy_distance(host):
    recipe = load_recipe(RECIPE, ["objective.name=energy", "objective.real_samples=12", "encoders.train=[digits_pca]"])
    encoders = build_encoders(recipe, "train", torch.device("cpu"))
    objective = EnergyObjective(ObjectiveContext(recipe, encoders, torch.device("cpu"), rollout=9))
    generated = torch.randn(9, encoders["digits_pca"].spec.dim, generator=torch.Generator().manual_seed(0))
    loss, logs = objective.loss({"digits_pca": generated})
    expected = brute_energy(generated, objective.real["digits_pca"])
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert logs["raw"]["digits_pca"] == pytest.approx(expected, rel=1e-5)
    same, _ = objective.loss({"digits_pca": objective.real["digits_pca"].float()})
    assert abs(float(same)) < 1e-5  # the real sample against itself: distance 0


def test_a_third_party_objective_trains_the_digits_recipe(host, tmp_path, capsys):
    assert main(["validate", RECIPE, *_sets(tmp_path, 8)]) == 0
    assert "energy objective on 256 real samples" in capsys.readouterr().out
    assert main(["train", RECIPE, *_sets(tmp_path, 8), "--no-progress"]) == 0
    run = tmp_path / "runs" / "energy"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_encoders = load_recipe(RECIPE).encoders.train
    assert [r["step"] for r in rows] == list(range(1, 9)) and not any(r["skipped"] for r in rows)
    assert all(set(r["raw"]) == set(train_encoders) for r in rows)
    first, last = sum(rows[0]["raw"].values()), sum(rows[-1]["raw"].values())
    assert last < 0.5 * first  # the generator moves towards the real digits under this distance
    assert "objective:\n  name: energy\n  real_samples: 256" in (run / "recipe.yaml").read_text()
    # and resumes like any run (the objective has no state to checkpoint): drop the last
    # checkpoint, resume from step 4, and steps 5-8 come out as they did the first time
    shutil.rmtree(run / "checkpoints" / "step_0000008")
    assert main(["train", RECIPE, *_sets(tmp_path, 8), "--no-progress", "--resume"]) == 0
    again = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again] == list(range(1, 9))
    assert [r["raw"] for r in again] == [r["raw"] for r in rows]


def test_the_trainer_imports_no_objective():
    """rdm_gradcache reaches the objective only through the registry (no rdm_mmd import anywhere)."""
    imported = set()
    for path in (ROOT / "plugins" / "rdm_gradcache").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert imported and not [m for m in imported if m.startswith(("rdm_mmd", "rdm_testing"))]


def test_rdm_train_imports_no_evaluation_code(tmp_path):
    """``rdm train`` checks the recipe's metric names (``eval.metrics: [sw_r14]``) as registry
    strings: up to building the objective (which then stops on the missing references) nothing of
    rdm_eval is imported but its registration entry point (``rdm_eval.hooks``, which the plugin
    host loads for every command)."""
    code = (
        "import sys\n"
        "from rdm_core.cli.main import main\n"
        f"rc = main(['train', {RECIPE!r}, '--set', 'references.dir={tmp_path}/none', "
        f"'--set', 'run.output_dir={tmp_path}/runs', '--no-progress'])\n"
        "print(rc, 'rdm_mmd.objective' in sys.modules, sorted(m for m in sys.modules if m.startswith('rdm_eval')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    assert "no reference set for encoder" in out.stderr  # it got as far as the objective
    rc, objective_built, evaluation = out.stdout.splitlines()[-1].split(" ", 2)
    assert rc != "0" and objective_built == "True"
    assert evaluation == "['rdm_eval', 'rdm_eval.hooks']", out.stdout
