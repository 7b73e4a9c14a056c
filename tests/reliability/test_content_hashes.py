"""Item 2: flipped bytes in an eval bank, a feature shard or a checkpoint are refused in one line
naming the file and the command that rebuilds it, by the command that reads them."""

from __future__ import annotations

from rdm_testing.reliability import error_line, flip_byte, rdm, tree


def test_flipped_eval_bank_is_refused_by_eval(project, capsys):
    bank = project / "refs" / "eval" / "digits_random_val.safetensors"
    flip_byte(bank)
    code, out, err = rdm(capsys, "eval", project / "a.yaml", "--checkpoint", project / "runs" / "a")
    assert code == 2
    line = error_line(err)
    assert str(bank) in line and "corrupt" in line and "rdm reference build" in line
    assert not (project / "runs" / "a" / "eval" / "step_0000003" / "eval.json").exists()  # no ratio printed or saved
    assert "ratio" not in out


def test_flipped_shard_is_refused_when_a_new_reference_reuses_it(project, capsys):
    shard = project / "refs" / "features" / "digits_random" / "train" / "shard_00000.safetensors"
    reference = project / "refs" / "digits_random.safetensors"
    before = reference.read_bytes()
    flip_byte(shard)
    # another bandwidth scale: the reference is rebuilt from the stored (reused) shards
    code, _, err = rdm(
        capsys, "reference", "build", project / "a.yaml", "--set", "objective.distance.bandwidth_scale=0.5"
    )
    assert code == 2
    line = error_line(err)
    assert str(shard) in line and "corrupt" in line
    assert f"rdm reference build {project / 'a.yaml'} --encoders digits_random" in line
    assert reference.read_bytes() == before  # the previous reference is still there, untouched


def test_flipped_checkpoint_is_refused_by_generate_and_eval(project, capsys):
    model = project / "runs" / "a" / "checkpoints" / "step_0000003" / "model.safetensors"
    flip_byte(model)
    out_dir = project / "samples"
    code, _, err = rdm(
        capsys, "generate", project / "a.yaml", "--checkpoint", model.parent, "--num", "4", "--out", out_dir
    )
    assert code == 2
    line = error_line(err)
    assert str(model) in line and "corrupt" in line and "earlier checkpoint" in line
    assert not out_dir.exists() or not any(out_dir.iterdir())
    code, _, err = rdm(capsys, "eval", project / "a.yaml", "--checkpoint", model.parent)
    assert code == 2 and str(model) in error_line(err)


def test_intact_files_load_and_every_artifact_records_a_hash(project):
    from rdm_core.artifacts import load_tensors, stored_digest

    written = list(project.rglob("*.safetensors"))
    assert written
    for path in written:
        assert stored_digest(path) is not None, path
        load_tensors(path)  # verifies


def test_corrupt_json_state_is_refused(project, capsys):
    import json

    state = project / "runs" / "a" / "checkpoints" / "step_0000003" / "state.json"
    data = json.loads(state.read_text())
    data["step"] = 2  # a plausible edit: still valid JSON, but not what was written
    state.write_text(json.dumps(data))
    snapshot = tree(project / "runs")
    code, _, err = rdm(capsys, "train", project / "a.yaml", "--resume", "--no-progress")
    assert code == 2
    line = error_line(err)
    assert str(state) in line and "corrupt" in line
    assert tree(project / "runs") == snapshot  # nothing written, nothing lost
