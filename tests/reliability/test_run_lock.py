"""Item 3: one writer per run directory. A second `rdm train` on a run another live process is
training exits non-zero in one line naming that PID, writing nothing; once the first is killed
(-9), the lock it left is detected as stale and taken over by the next `rdm train --resume`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rdm_testing.reliability import error_line, rdm, write_recipe


def _wait_for(predicate, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:  # a hung subprocess, not a speed check
            pytest.fail(f"condition not reached in {timeout:.0f} s")
        time.sleep(0.2)


def test_second_writer_is_refused_and_a_dead_holders_lock_is_taken_over(project, capsys):
    recipe = write_recipe(project, name="locked", train={"steps": 100000, "checkpoint_every": 5})
    run = project / "runs" / "locked"
    code = "import sys\nfrom rdm_core.cli.main import main\nraise SystemExit(main(sys.argv[1:]))"
    first = subprocess.Popen(
        [sys.executable, "-c", code, "train", str(recipe), "--no-progress"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (run / "checkpoints" / "step_0000005").is_dir() or first.poll() is not None)
        assert first.poll() is None, first.stderr.read()
        holder = json.loads((run / ".rdm.lock").read_text())
        assert holder["pid"] == first.pid

        code_, _, err = rdm(capsys, "train", recipe, "--resume", "--no-progress")
        assert code_ == 2
        line = error_line(err)
        assert f"PID {first.pid}" in line and "in use" in line and "run.name" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()

    from rdm_core.checkpoints import list_checkpoints

    steps_before = _logged_steps(run)
    assert steps_before == sorted(set(steps_before))  # one writer: no interleaved or repeated rows
    last = list_checkpoints(run)[-1][0]
    code_, _, err = rdm(
        capsys,
        "train",
        recipe,
        "--resume",
        "--no-progress",
        "--allow-recipe-change",
        "--set",
        f"train.steps={last + 2}",
    )
    assert code_ == 0, err
    assert f"left by PID {first.pid}" in err  # the stale lock was detected and taken over
    assert not (run / ".rdm.lock").exists()  # released on exit
    steps = _logged_steps(run)
    assert steps == list(range(1, last + 3))


def _logged_steps(run) -> list[int]:
    return [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines() if r.strip()]
