"""Item 4: `rdm eval --checkpoint RUN_A/...` writes beside the evaluated checkpoint (or --out),
never into the run directory of the recipe it was given, which may be another run."""

from __future__ import annotations

from rdm_testing.reliability import rdm, tree, write_recipe


def test_eval_of_another_runs_checkpoint_writes_beside_it(project, capsys):
    recipe_b = write_recipe(project, name="b")
    code, _, _ = rdm(capsys, "eval", recipe_b, "--base")  # run b's own evaluation
    assert code == 0
    run_b = project / "runs" / "b"
    before = tree(run_b)
    assert "eval/base/eval.json" in before

    checkpoint = project / "runs" / "a" / "checkpoints" / "step_0000002"
    code, out, err = rdm(capsys, "eval", recipe_b, "--checkpoint", checkpoint)
    assert code == 0, err
    report = project / "runs" / "a" / "eval" / "step_0000002" / "eval.json"
    assert report.is_file() and "eval.json" in out
    assert tree(run_b) == before  # run b's files: untouched

    # a run directory means its latest checkpoint, evaluated beside that checkpoint
    code, out, _ = rdm(capsys, "eval", recipe_b, "--checkpoint", project / "runs" / "a")
    assert code == 0
    assert (project / "runs" / "a" / "eval" / "step_0000003" / "eval.json").is_file()
    assert tree(run_b) == before

    # --out wins
    code, _, _ = rdm(capsys, "eval", recipe_b, "--checkpoint", checkpoint, "--out", project / "mine")
    assert code == 0 and (project / "mine" / "eval.json").is_file()


def test_eval_of_a_weights_file_outside_runs_goes_beside_the_file(project, capsys, tmp_path):
    import shutil

    weights = tmp_path / "exported" / "student.safetensors"
    weights.parent.mkdir()
    shutil.copyfile(project / "runs" / "a" / "checkpoints" / "step_0000003" / "model.safetensors", weights)
    code, _, err = rdm(capsys, "eval", project / "a.yaml", "--checkpoint", weights)
    assert code == 0, err
    assert (tmp_path / "exported" / "eval" / "student" / "eval.json").is_file()
    assert not (project / "runs" / "a" / "eval").exists()
