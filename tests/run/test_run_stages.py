"""The runner of `rdm run`: order, skip by fingerprint and untouched outputs, re-runs when the
recipe or an upstream stage changes, failures recorded in report.json, --stages selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdm_core.errors import RecipeError
from rdm_core.recipe.load import recipe_from_dict
from rdm_core.run.runner import run_stages
from rdm_core.run.stage import StageResult


class FileStage:
    """Writes one file whose content depends on the recipe; counts its runs."""

    def __init__(self, name: str, order: int, field: str, fail: bool = False) -> None:
        self.name, self.order, self.field, self.fail, self.runs = name, order, field, fail, 0

    def applies(self, recipe):
        return True

    def key(self, recipe):
        return {self.field: getattr(recipe.train, self.field)}

    def outputs(self, recipe, ctx):
        return [ctx.run_dir / f"{self.name}.txt"]

    def run(self, recipe, ctx):
        self.runs += 1
        if self.fail:
            raise RecipeError("this stage cannot run.", "fix it")
        out = self.outputs(recipe, ctx)[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{getattr(recipe.train, self.field)} after {sorted(ctx.results)}")
        return StageResult(outputs=[str(out)], metrics={f"{self.name}_metric": self.runs})


def _recipe(tmp_path: Path, **train):
    return recipe_from_dict(
        {"run": {"name": "r", "output_dir": str(tmp_path)}, "generator": {"name": "g"}, "train": train}
    )


def _statuses(report: Path) -> dict[str, str]:
    return {s["name"]: s["status"] for s in json.loads(report.read_text())["stages"]}


def test_stages_run_in_order_then_skip_until_something_changes(tmp_path):
    first, second = FileStage("first", 20, "steps"), FileStage("second", 10, "lr")
    stages = [first, second]
    rows, _, report = run_stages(_recipe(tmp_path, steps=3, lr=0.1), "r.yaml", available=stages)
    assert [r.name for r in rows] == ["second", "first"] and (first.runs, second.runs) == (1, 1)
    assert (tmp_path / "r" / "first.txt").read_text() == "3 after ['second']"
    body = json.loads(report.read_text())
    assert body["recipe"] == "r.yaml" and body["rehearse"] is False
    assert body["metrics"] == {"first_metric": 1, "second_metric": 1}
    assert set(body["stages"][0]) == {"name", "status", "seconds", "outputs"}

    run_stages(_recipe(tmp_path, steps=3, lr=0.1), "r.yaml", available=stages)
    assert _statuses(report) == {"second": "skipped", "first": "skipped"} and (first.runs, second.runs) == (1, 1)
    assert json.loads(report.read_text())["metrics"] == {"first_metric": 1, "second_metric": 1}  # kept from records

    run_stages(_recipe(tmp_path, steps=4, lr=0.1), "r.yaml", available=stages)  # only `first` depends on steps
    assert _statuses(report) == {"second": "skipped", "first": "ok"} and first.runs == 2

    run_stages(_recipe(tmp_path, steps=4, lr=0.2), "r.yaml", available=stages)  # upstream re-ran: both run
    assert _statuses(report) == {"second": "ok", "first": "ok"}

    (tmp_path / "r" / "second.txt").write_text("tampered")  # a touched output is not trusted
    run_stages(_recipe(tmp_path, steps=4, lr=0.2), "r.yaml", available=stages)
    assert _statuses(report) == {"second": "ok", "first": "ok"}
    (tmp_path / "r" / "first.txt").unlink()
    run_stages(_recipe(tmp_path, steps=4, lr=0.2), "r.yaml", available=stages)
    assert _statuses(report) == {"second": "skipped", "first": "ok"}


def test_a_failed_stage_is_reported_and_stops_the_run(tmp_path):
    stages = [FileStage("a", 10, "steps"), FileStage("b", 20, "steps", fail=True), FileStage("c", 30, "steps")]
    with pytest.raises(RecipeError, match="cannot run"):
        run_stages(_recipe(tmp_path, steps=1), "r.yaml", available=stages)
    body = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [(s["name"], s["status"]) for s in body["stages"]] == [("a", "ok"), ("b", "failed")]
    assert body["stages"][1]["error"] == "this stage cannot run."
    assert stages[2].runs == 0


def test_stages_option_runs_only_the_named_ones(tmp_path):
    a, b = FileStage("a", 10, "steps"), FileStage("b", 20, "steps")
    run_stages(_recipe(tmp_path, steps=1), "r.yaml", stages=["a"], available=[a, b])
    assert (a.runs, b.runs) == (1, 0) and _statuses(tmp_path / "r" / "report.json") == {"a": "ok"}
    run_stages(_recipe(tmp_path, steps=1), "r.yaml", stages=["b"], available=[a, b])
    assert (a.runs, b.runs) == (1, 1) and (tmp_path / "r" / "b.txt").read_text() == "1 after ['a']"
    with pytest.raises(RecipeError, match=r"--stages names \['z'\]"):
        run_stages(_recipe(tmp_path, steps=1), "r.yaml", stages=["z"], available=[a, b])


def test_every_shipped_stage_implements_the_protocol():
    from rdm_core.run.runner import all_stages
    from rdm_core.run.stage import Stage

    stages = all_stages()
    assert [s.name for s in stages] == ["context", "references", "train", "generate", "eval"]
    assert all(isinstance(s, Stage) for s in stages)
