"""`rdm validate` (and `--rehearse`) refuses, in one line, a klein recipe missing any argument or
file its rehearsal (and so its full run) needs; a full recipe's missing user data is named."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from rdm_core.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
KLEIN = ROOT / "recipes" / "flux2-klein-1step.yaml"


def _klein() -> dict:
    return yaml.safe_load(KLEIN.read_text())


def _geneval_part(d: dict) -> dict:
    return d["references"]["train"]["args"]["sources"][0]["args"]


def _drop(path: list[str]):
    def edit(d: dict) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _set(path: list[str], value):
    def edit(d: dict) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


CASES = {
    "curation scorer without repo": (
        lambda d: _geneval_part(d)["scorer_args"].pop("repo"),
        r"part 0 scorer 'geneval': the 'official' GenEval scorer needs repo",
    ),
    "eval geneval without detector_dir": (
        _drop(["eval", "args", "geneval", "detector_dir"]),
        r"eval.metrics \(geneval\): the 'official' GenEval scorer needs detector_dir",
    ),
    "pickscore renders another generator": (
        _set(["eval", "args", "pickscore", "generator_args"], {"resolution": 256}),
        r"\['resolution'\] would evaluate another generator",
    ),
    "sw_r14 without val banks": (_drop(["references", "val"]), r"references.val is not set"),
    "teacher without generator": (
        lambda d: _geneval_part(d)["source"]["args"].pop("generator"),
        r"part 0 source: the teacher source needs `generator`",
    ),
    "misspelled metric": (_set(["eval", "metrics"], ["sw_r14", "genevall"]), r"genevall"),
    "missing shipped prompt set": (
        lambda d: _geneval_part(d)["source"]["args"].update(prompts="pkg:rdm_eval/assets/nope.jsonl"),
        r"nope.jsonl",
    ),
    "val jsonl that does not exist": (
        _set(["references", "val"], {"name": "jsonl", "args": {"path": "/nonexistent/val.jsonl"}}),
        r"references.val path: file /nonexistent/val.jsonl does not exist",
    ),
    "curation filter argument misspelled": (
        lambda d: _geneval_part(d).update(max_per_promt=3),
        r"has no argument 'max_per_promt'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_refuses_in_one_line(case, tmp_path, monkeypatch, capsys):
    edit, message = CASES[case]
    data = copy.deepcopy(_klein())
    edit(data)
    recipe = tmp_path / "klein.yaml"
    recipe.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--rehearse", str(recipe)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("error:") == 1 and re.search(message, err), err
    # without --rehearse it fails too (possibly first on the user data this machine lacks)
    assert main(["validate", str(recipe)]) == 2
    assert " ".join(capsys.readouterr().err.split()).count("error:") == 1


def test_the_shipped_klein_recipe_passes_its_rehearsal_check_and_names_missing_data(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--rehearse", str(KLEIN)]) == 0
    assert main(["validate", str(KLEIN)]) == 2  # the full run needs the GenEval scorer and the data
    assert "data/geneval/repo" in capsys.readouterr().err


def test_sample_prompts_need_a_prompt_conditioned_generator(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", "recipes/digits-cpu.yaml", "--set", "train.sample_prompts=[a cat]"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("error:") == 1 and "'digits-mlp' does not encode prompts" in err, err
    assert main(["validate", "recipes/flux2-klein-tiny.yaml", "--set", "train.sample_prompts=[a cat]"]) == 0
