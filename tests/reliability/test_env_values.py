"""Item 7: values a recipe reads from the environment (`${oc.env:...}`) are used but never written:
recipe.yaml, checkpoints, the reference manifest and eval reports keep the interpolation text."""

from __future__ import annotations

from rdm_testing.reliability import rdm, write_recipe


def _files_containing(root, text: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_environment_values_are_used_but_never_persisted(project, capsys, monkeypatch):
    secret = "hunter2-not-for-disk"
    monkeypatch.setenv("RDM_TEST_SECRET", secret)
    monkeypatch.setenv("RDM_TEST_REFS", str(project / "refs"))
    recipe = write_recipe(
        project,
        name="env",
        description="token ${oc.env:RDM_TEST_SECRET}",
        references={"dir": "${oc.env:RDM_TEST_REFS}"},
        train={"steps": 1},
    )
    code, _, err = rdm(capsys, "train", recipe, "--no-progress")
    assert code == 0, err  # the environment values were used (the references were found)
    run = project / "runs" / "env"
    code, _, err = rdm(capsys, "eval", recipe, "--checkpoint", run)
    assert code == 0, err
    saved = (run / "recipe.yaml").read_text()
    assert "${oc.env:RDM_TEST_SECRET}" in saved and "${oc.env:RDM_TEST_REFS}" in saved
    assert _files_containing(run, secret) == []
    report = (run / "eval" / "step_0000001" / "eval.json").read_text()
    assert "${oc.env:RDM_TEST_REFS}" in report and str(project / "refs") not in report

    # the saved recipe reads the environment again when used
    from rdm_core.recipe.load import load_recipe

    assert load_recipe(run / "recipe.yaml").description == f"token {secret}"


def test_persisted_keeps_env_text_through_other_interpolations(monkeypatch):
    from rdm_core.recipe.load import recipe_from_dict
    from rdm_core.recipe.persist import persisted, reads_environment

    monkeypatch.setenv("RDM_TEST_SECRET", "s3cr3t")
    recipe = recipe_from_dict(
        {
            "run": {"name": "x", "output_dir": "/scratch/${oc.env:RDM_TEST_SECRET}"},
            "description": "${run.output_dir}/a and ${run.name}",
        }
    )
    assert recipe.description == "/scratch/s3cr3t/a and x"
    assert persisted(recipe)["description"] == "/scratch/${oc.env:RDM_TEST_SECRET}/a and x"
    assert reads_environment(recipe, "description") and not reads_environment(recipe, "run.name")
