"""Item 1: one function decides whether reference files fit a recipe; `rdm train` and `rdm eval`
refuse files built with other settings or other encoder weights, fields a file does not record are
accepted with one warning line naming them, and more landmarks than pool rows is said and recorded."""

from __future__ import annotations

from rdm_testing.reliability import error_line, rdm


def test_eval_refuses_banks_extracted_with_other_encoder_weights(project, capsys):
    code, _, err = rdm(
        capsys,
        "eval",
        project / "a.yaml",
        "--checkpoint",
        project / "runs" / "a",
        "--set",
        "encoders.args.digits_random.seed=5",
    )
    assert code == 2
    line = error_line(err)
    assert "digits_random" in line and "encoder weights differ" in line
    assert f"rdm reference build {project / 'a.yaml'} --encoders digits_random" in line
    assert not (project / "runs" / "a" / "eval").exists()


def test_fields_a_bank_does_not_record_are_accepted_with_one_warning(project, capsys):
    import shutil

    from rdm_core.artifacts import load_tensors, save_tensors

    bank = project / "refs" / "eval" / "digits_gabor_val.safetensors"
    tensors, meta = load_tensors(bank)
    for key in ("encoder_fingerprint", "n_pool"):
        meta[key] = None  # as in a bank imported from the authors' files
    save_tensors(bank, tensors, meta)
    shutil.rmtree(project / "refs" / "manifest_parts")  # nothing else to fall back on
    code, _, err = rdm(capsys, "eval", project / "a.yaml", "--checkpoint", project / "runs" / "a")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, err
    assert str(bank) in warnings[0] and "encoder_fingerprint, n_pool" in warnings[0]


def test_more_landmarks_than_pool_rows_is_said_and_recorded(project, capsys):
    from rdm_core.artifacts import read_meta
    from rdm_core.recipe.load import load_recipe
    from rdm_references.check import check_references

    code, _, err = rdm(capsys, "reference", "build", project / "a.yaml", "--set", "objective.distance.landmarks=100000")
    assert code == 0, err
    assert "objective.distance.landmarks=100000 is more than" in err
    header = read_meta(project / "refs" / "digits_random.safetensors")
    assert header["landmarks_requested"] == 100000 and header["landmarks"] < 100000
    check_references(load_recipe(project / "a.yaml", ["objective.distance.landmarks=100000"]))
