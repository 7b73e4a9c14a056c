"""Item 8 (bad values): values that used to end in a Python traceback deep inside training, or in
a run that could only climb the loss, are refused in one line by every command, before a run
directory is created, and `rdm validate` says the same."""

from __future__ import annotations

import pytest

from rdm_testing.reliability import error_line, rdm, tree, write_recipe

CASES = [
    # (override, words the one line must contain)
    ("train.micro_batch=0", ["train.micro_batch must be at least 1, got 0", "e.g. 8"]),
    ("train.lr=-0.001", ["train.lr must be greater than 0, got -0.001", "e.g. 1e-4"]),
    ("train.lr=nan", ["train.lr must be a finite number"]),
    ("train.lr=1e38", ["train.lr must be at most 1, got 1e+38"]),
    ("train.steps=-5", ["train.steps must be at least 1, got -5"]),
    ("train.max_nonfinite_steps=0", ["train.max_nonfinite_steps must be at least 1"]),
    ("train.betas=[0.9,1.5]", ["train.betas[1] must lie in [0, 1), got 1.5"]),
    ("generator.args.hidden=abc", ["generator: generator 'digits-mlp' argument 'hidden': 'abc' is not an int"]),
    ("generator.args.hidden=2.5", ["argument 'hidden': 2.5 is not an int", "an int"]),
    ("train.lr=[1,", ["--set train.lr=[1,", "not valid YAML"]),
    ("run.name=../../escaped", ["run.name '../../escaped' leaves run.output_dir"]),
]


@pytest.mark.parametrize(("override", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_value_is_one_line_and_no_run_directory(project, capsys, override, words):
    recipe = write_recipe(project, name="fresh")
    refs = tree(project / "refs")
    code, _, err = rdm(capsys, "train", recipe, "--no-progress", "--set", override)
    assert code == 2
    line = error_line(err)
    for w in words:
        assert w in line, line
    assert not (project / "runs" / "fresh").exists()
    assert not (project / "escaped").exists() and not (project.parent / "escaped").exists()
    assert tree(project / "refs") == refs
    if "YAML" not in line and "run.name" not in line:  # the same check in rdm validate
        code, _, err = rdm(capsys, "validate", recipe, "--set", override)
        assert code == 2 and error_line(err) == line
