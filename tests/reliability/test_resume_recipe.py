"""Item 5: `rdm train --resume` with a changed recipe is refused, naming the differing keys, unless
--allow-recipe-change, which keeps every earlier recipe and records the step where it changed."""

from __future__ import annotations

import json

import yaml

from rdm_testing.reliability import error_line, rdm, tree


def test_resume_with_a_changed_recipe_is_refused_with_the_keys(project, capsys):
    run = project / "runs" / "a"
    before = tree(run)
    code, _, err = rdm(
        capsys,
        "train",
        project / "a.yaml",
        "--resume",
        "--no-progress",
        "--set",
        "train.lr=0.01",
        "--set",
        "train.steps=5",
    )
    assert code == 2
    line = error_line(err)
    assert "train.lr 0.001 -> 0.01" in line and "train.steps 3 -> 5" in line
    assert f"rdm train {run / 'recipe.yaml'} --resume" in line and "--allow-recipe-change" in line
    assert tree(run) == before  # refused before anything was written

    # bookkeeping keys (logging, checkpoint cadence, the CPU budget, eval) may change freely
    code, _, err = rdm(capsys, "train", project / "a.yaml", "--resume", "--no-progress", "--set", "train.log_every=2")
    assert code == 0, err


def test_allowed_change_keeps_the_earlier_recipe_and_records_the_step(project, capsys):
    run = project / "runs" / "a"
    original = (run / "recipe.yaml").read_text()
    code, _, err = rdm(
        capsys,
        "train",
        project / "a.yaml",
        "--resume",
        "--no-progress",
        "--allow-recipe-change",
        "--set",
        "train.steps=5",
        "--set",
        "train.lr=0.002",
    )
    assert code == 0, err
    assert (run / "recipe_history" / "step_0000003.yaml").read_text() == original
    rows = [json.loads(r) for r in (run / "recipe_history" / "changes.jsonl").read_text().splitlines()]
    assert rows == [
        {"step": 3, "changed": {"train.lr": {"from": 0.001, "to": 0.002}, "train.steps": {"from": 3, "to": 5}}}
    ]
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["lr"] == 0.002
    from rdm_core.checkpoints import list_checkpoints

    assert [s for s, _ in list_checkpoints(run)] == [3, 4, 5]

    # a second change is recorded too, and the first recipe is still there
    code, _, err = rdm(
        capsys,
        "train",
        project / "a.yaml",
        "--resume",
        "--no-progress",
        "--allow-recipe-change",
        "--set",
        "train.steps=6",
    )
    assert code == 0, err
    assert sorted(p.name for p in (run / "recipe_history").glob("*.yaml")) == ["step_0000003.yaml", "step_0000005.yaml"]
    assert len((run / "recipe_history" / "changes.jsonl").read_text().splitlines()) == 2
