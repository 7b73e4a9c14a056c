"""A run SIGKILLed after step k and resumed ends bit-identical to an uninterrupted run.

Both runs go through the real CLI (`rdm train`, with the test plugin registered in-process by
rdm_testing.gradcache.run_rdm) in subprocesses; the killed one runs the test plugin's kill-drill
trainer (GradCache plus a step callback) and dies by SIGKILL right after step 3, between
checkpoints (every 2 steps), so the resume (plain `gradcache`) replays step 3 from the step-2
checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import torch

from rdm_core.artifacts import load_tensors
from rdm_core.checkpoints import list_checkpoints
from rdm_testing import subprocess_env
from rdm_testing.gradcache.project import build_references, write_recipe
from rdm_testing.gradcache.tiny_plugin import KILL_AFTER_ENV

SECTIONS = {"train": {"steps": 5, "checkpoint_every": 2, "schedule": "cosine", "warmup_steps": 2, "sample_count": 4}}


def _rdm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rdm_testing.gradcache.run_rdm", *args, "--no-progress"],
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _rows(run: Path) -> list[dict]:
    keep = ("step", "raw", "weights", "loss", "grad_norm", "lr", "skipped")
    return [{k: r[k] for k in keep} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    build_references(tmp_path)
    straight = write_recipe(tmp_path, name="straight", **SECTIONS)
    killed = write_recipe(tmp_path, name="killed", **SECTIONS)

    done = _rdm("train", str(straight))
    assert done.returncode == 0, done.stderr[-3000:]

    dead = _rdm("train", str(killed), "--set", "train.trainer=gc-kill-drill", env={KILL_AFTER_ENV: "3"})
    assert dead.returncode == -signal.SIGKILL, dead.stderr[-3000:]
    run_killed = tmp_path / "runs" / "killed"
    assert [s for s, _ in list_checkpoints(run_killed)] == [2]
    assert [r["step"] for r in _rows(run_killed)] == [1, 2, 3]

    # the killed run's own recipe (a changed one is refused on resume); 0 never kills
    again = _rdm("train", str(killed), "--resume", "--set", "train.trainer=gc-kill-drill", env={KILL_AFTER_ENV: "0"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr

    run_straight = tmp_path / "runs" / "straight"
    assert [s for s, _ in list_checkpoints(run_killed)] == [s for s, _ in list_checkpoints(run_straight)] == [2, 4, 5]
    for step in ("step_0000004", "step_0000005"):
        for file in ("model.safetensors", "state.safetensors"):
            a, _ = load_tensors(run_straight / "checkpoints" / step / file)
            b, _ = load_tensors(run_killed / "checkpoints" / step / file)
            assert a.keys() == b.keys()
            for key in a:
                assert torch.equal(a[key], b[key]), f"{step}/{file}:{key}"
    # Optimizer moments, controller state and every RNG are in the state files compared above.
    state, _ = load_tensors(run_killed / "checkpoints" / "step_0000005" / "state.safetensors")
    assert any(k.startswith("optim.state.") for k in state) and "rng.0.generator.noise" in state
    assert _rows(run_killed) == _rows(run_straight)
    first, _ = load_tensors(run_killed / "checkpoints" / "step_0000004" / "model.safetensors")
    last, _ = load_tensors(run_killed / "checkpoints" / "step_0000005" / "model.safetensors")
    assert any(not torch.equal(first[k], last[k]) for k in first)
