"""Item 3 through `rdm run`: its stages write into the run directory under the same lock as
`rdm train`, so a second writer (either command) is refused in one line naming the holder's PID,
before any stage starts; a lock left by a killed holder is taken over."""

from __future__ import annotations

from rdm_testing.reliability import LockHolder, error_line, rdm, tree


def test_rdm_run_and_rdm_train_refuse_a_run_directory_in_use(project, capsys):
    run = project / "runs" / "a"
    before = tree(run)
    holder = LockHolder(run, command="rdm run a.yaml")
    try:
        for command in (("run", project / "a.yaml", "--stages", "train"), ("train", project / "a.yaml", "--resume")):
            code, _, err = rdm(capsys, *command, "--no-progress") if command[0] == "train" else rdm(capsys, *command)
            assert code == 2
            line = error_line(err)
            assert f"in use by PID {holder.pid} (rdm run a.yaml)" in line and f"kill {holder.pid}" in line
        assert {k: v for k, v in tree(run).items() if k != ".rdm.lock"} == before  # nothing written
    finally:
        holder.release(kill=True)

    code, _, err = rdm(capsys, "run", project / "a.yaml", "--stages", "train")
    assert code == 0, err
    assert f"left by PID {holder.pid}" in err  # the dead holder's lock was taken over
    assert not (run / ".rdm.lock").exists()
    assert (run / "report.json").is_file()


def test_a_released_lock_leaves_nothing_behind(project, capsys):
    run = project / "runs" / "fresh"
    holder = LockHolder(run)
    holder.release()
    assert not run.exists()  # the holder created the directory and wrote nothing: removed again
