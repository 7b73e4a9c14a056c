"""Acceptance (kill -9): `rdm run` killed with SIGKILL in the middle of its train stage, then run
again, gives bit-identical weights and the same metrics as an uninterrupted `rdm run`, and leaves
no temporary file anywhere in the run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch

from rdm_testing.reliability import write_recipe

TRAIN = {"steps": 40, "checkpoint_every": 5, "keep_checkpoints": 2, "sample_count": 4}
KEEP = ("step", "raw", "weights", "loss", "grad_norm", "lr", "skipped")
CLI = "import sys\nfrom rdm_core.cli.main import main\nraise SystemExit(main(sys.argv[1:]))"


def _rdm_run(recipe):
    return subprocess.run(
        [sys.executable, "-c", CLI, "run", str(recipe), "--stages", "train"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _rows(run):
    return [{k: r[k] for k in KEEP} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_rdm_run_killed_mid_train_resumes_bit_exactly_without_temporaries(project):
    from rdm_core.artifacts import load_tensors
    from rdm_core.checkpoints import list_checkpoints

    straight = write_recipe(project, name="straight", train=TRAIN)
    killed = write_recipe(project, name="killed", train=TRAIN)
    done = _rdm_run(straight)
    assert done.returncode == 0, done.stderr[-3000:]

    run = project / "runs" / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", str(killed), "--stages", "train"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 600
    while not (run / "checkpoints" / "step_0000005").is_dir() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)  # somewhere in the steps after the first checkpoint
    proc.wait()
    assert list_checkpoints(run)[-1][0] < 40

    again = _rdm_run(killed)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (run / ".rdm.lock").exists()
    assert [p for p in run.rglob("*") if p.name.endswith(".tmp")] == []
    assert _rows(run) == _rows(project / "runs" / "straight")
    a, b = project / "runs" / "straight" / "checkpoints", run / "checkpoints"
    assert [s for s, _ in list_checkpoints(a.parent)] == [s for s, _ in list_checkpoints(run)] == [35, 40]
    for file in ("model.safetensors", "state.safetensors"):
        x, _ = load_tensors(a / "step_0000040" / file)
        y, _ = load_tensors(b / "step_0000040" / file)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), file
