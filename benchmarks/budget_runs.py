"""Helpers of the equal-compute benchmarks (batch_axis.py, distances.py) on the digits CPU demo.

Every arm is run through the real commands (``rdm reference build``, ``rdm train``, ``rdm eval``)
in subprocesses with ``--set`` overrides, so nothing is written into the repository except the
results JSON/PNG. The compute budget is ``train.max_seconds``: process CPU seconds of the training
steps (``time.process_time``), which other jobs on the shared machine do not shrink.

Because the recipe's cosine schedule is defined over ``train.steps``, each arm is first
*calibrated* (a few steps, CPU seconds per step measured) and then run with
``train.steps = budget / seconds_per_step`` so its schedule ends near the budget;
``train.max_seconds = budget`` stays the hard stop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits-cpu.yaml"
RDM = [sys.executable, "-m", "rdm_core"]
CALIBRATION_STEPS = 5


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def sets(overrides: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in overrides.items():
        text = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        out += ["--set", f"{key}={text}"]
    return out


def rdm(*args: str, log: Path) -> None:
    """One rdm command; its output goes to ``log``; a failure stops the benchmark with the log tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write("$ rdm " + " ".join(args) + "\n")
        fh.flush()
        code = subprocess.call([*RDM, *args], stdout=fh, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)
    if code:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"rdm {' '.join(args[:2])} failed (exit {code}); log {log}:\n{tail}")


def derived_recipe(path: Path, distance: dict[str, Any]) -> Path:
    """The demo recipe with whole ``objective.distance`` keys replaced (``--set`` merges mappings,
    so e.g. ``kernel_args`` cannot be emptied by an override)."""
    from rdm_core.recipe.load import load_recipe, to_yaml

    recipe = load_recipe(RECIPE)
    for key, value in distance.items():
        recipe.objective.distance[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(recipe))
    return path


def build_references(recipe: Path, overrides: dict[str, Any], log: Path) -> float:
    """``rdm reference build`` into the arm's own references dir; returns wall seconds."""
    t0 = time.perf_counter()
    rdm("reference", "build", str(recipe), *sets(overrides), log=log)
    return time.perf_counter() - t0


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def calibrate(recipe: Path, overrides: dict[str, Any], work: Path, log: Path, steps: int = CALIBRATION_STEPS) -> float:
    """CPU seconds per training step of this arm (steps 2..K; step 1 carries one-off costs)."""
    o = {
        **overrides,
        "run.output_dir": str(work / "calibration"),
        "train.steps": max(3, steps),
        "train.max_seconds": 1e9,
        "train.log_every": 1,
        "train.checkpoint_every": 10**6,
        "train.sample_count": 0,
    }
    run_dir = work / "calibration" / str(overrides.get("run.name", "digits-cpu"))
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run every time the benchmark is run
    rdm("train", str(recipe), "--no-progress", *sets(o), log=log)
    rows = _metrics(run_dir)
    cpu = [r["train_cpu_seconds"] for r in rows]
    return (cpu[-1] - cpu[0]) / (len(cpu) - 1)


def train_arm(recipe: Path, overrides: dict[str, Any], budget: float, per_step: float, log: Path) -> dict[str, Any]:
    """Train under the CPU budget; returns steps done, CPU and wall seconds, the run dir."""
    # 5% more steps than the estimate: the budget, not train.steps, should end the run
    steps = max(1, round(1.05 * budget / per_step))
    o = {
        **overrides,
        "train.steps": steps,
        "train.max_seconds": budget,
        "train.checkpoint_every": 10**6,
        "train.sample_every": 0,
    }
    run_dir = Path(str(overrides["run.output_dir"])) / str(overrides.get("run.name", "digits-cpu"))
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    rdm("train", str(recipe), "--no-progress", *sets(o), log=log)
    wall = time.perf_counter() - t0
    last = _metrics(run_dir)[-1]
    return {
        "planned_steps": steps,
        "steps": int(last["step"]),
        "train_cpu_s": float(last["train_cpu_seconds"]),
        "train_wall_s": wall,
        "run_dir": str(run_dir),
    }


def evaluate(recipe: Path, overrides: dict[str, Any], run_dir: str, log: Path) -> dict[str, Any]:
    """``rdm eval`` of the arm's final checkpoint: per-encoder SW ratios, held-out and all means."""
    out = Path(run_dir) / "eval" / "final"
    rdm("eval", str(recipe), "--checkpoint", run_dir, "--out", str(out), *sets(overrides), log=log)
    sw = json.loads((out / "eval.json").read_text())["metrics"]["sw_r14"]
    return {
        "held_out_sw": float(sw["extra"]["mean_held_out"]),
        "all_sw": float(sw["value"]),
        "train_sw": float(sw["extra"]["mean_train"]),
        "per_encoder": sw["per_item"],
    }


def bar_png(path: Path, labels: list[str], held: list[float], every: list[float], title: str) -> Path:
    """Grouped bars: held-out and all-encoder SW ratio per arm (dashed line: real val = 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 3.6))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], held, 0.4, label="held-out mean", color="tab:blue")
    ax.bar([x + 0.2 for x in xs], every, 0.4, label="all-encoder mean", color="tab:gray")
    for x, v in zip(xs, held, strict=True):
        ax.text(x - 0.2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, ls="--", color="k", lw=0.8)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("SW ratio to real val (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
