"""Item 9: a process killed while writing leaves `.<name>.<random>.tmp` files (three `loss.png` ones
were found after kills during training); the next `rdm train --resume` / `rdm reference build`
deletes those of the directories it owns, and the result is the same as without them."""

from __future__ import annotations

from rdm_testing.reliability import rdm


def _plant(path, data: bytes = b"half a file") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_resume_removes_what_a_killed_trainer_left(project, capsys):
    run = project / "runs" / "a"
    orphans = [
        run / ".loss.png.k3j2_1.tmp",
        run / ".loss.png.8dh2j.tmp",
        run / ".metrics.jsonl.q1.tmp",
        run / "samples" / ".step_0000004.png.z9.tmp",
        run / "checkpoints" / ".step_0000004.abc123.tmp" / "model.safetensors",  # a checkpoint dir cut short
    ]
    for path in orphans:
        _plant(path)
    keep = run / "eval" / "step_0000003" / ".eval.json.x.tmp"  # an evaluation may be writing: not ours
    _plant(keep)
    code, _, err = rdm(
        capsys,
        "train",
        project / "a.yaml",
        "--resume",
        "--no-progress",
        "--allow-recipe-change",
        "--set",
        "train.steps=4",
    )
    assert code == 0, err
    assert "removed 5 temporary file(s)" in err
    assert [p for p in run.rglob("*.tmp") if p != keep] == []
    assert keep.exists()
    from rdm_core.checkpoints import list_checkpoints, load_checkpoint

    assert [s for s, _ in list_checkpoints(run)][-1] == 4
    load_checkpoint(run / "checkpoints" / "step_0000004")


def test_reference_build_removes_what_a_killed_build_left(project, capsys):
    refs = project / "refs"
    orphans = [
        refs / ".digits_random.safetensors.a1.tmp",
        refs / "eval" / ".digits_gabor_val.safetensors.b2.tmp",
        refs / "manifest_parts" / ".digits_pixels.json.c3.tmp",
        refs / "floors_parts" / ".digits_random.json.d4.tmp",
        refs / ".manifest.json.e5.tmp",
        refs / ".floors.json.f6.tmp",
        refs / "features" / "digits_random" / "train" / ".shard_00001.safetensors.g7.tmp",
    ]
    for path in orphans:
        _plant(path)
    code, _, err = rdm(capsys, "reference", "build", project / "a.yaml")
    assert code == 0, err
    assert list(refs.rglob("*.tmp")) == []
