"""Prompt files in a rehearsal: the first prompts (GenEval files: the first row of every task),
read with the project's one JSONL reader (a broken line is refused in one line, not a traceback)."""

from __future__ import annotations

import json

import pytest

from rdm_core.errors import RecipeError
from rdm_core.run.rehearse import PROMPT_ROWS, Rehearsal


def test_text_prompts_keep_their_first_rows(tmp_path):
    source = tmp_path / "prompts.txt"
    source.write_text("".join(f"prompt {i}\n\n" for i in range(20)))
    copy = Rehearsal(tmp_path / "rehearsal").prompts(str(source))
    assert copy is not None
    assert open(copy).read().splitlines() == [f"prompt {i}" for i in range(PROMPT_ROWS)]


def test_geneval_rows_keep_the_first_row_of_every_task(tmp_path):
    rows = [
        {"tag": tag, "include": [{"class": f"c{i}", "count": 1}], "prompt": f"{tag} {i}"}
        for i in range(3)
        for tag in ("single_object", "two_object", "counting", "colors", "position")
    ]
    source = tmp_path / "geneval.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    copy = Rehearsal(tmp_path / "rehearsal").prompts(str(source))
    assert copy is not None
    kept = [json.loads(line) for line in open(copy).read().splitlines()]
    assert kept == rows[:5]  # i == 0 of each of the five tasks, in file order


def test_plain_jsonl_prompts_keep_their_first_rows(tmp_path):
    rows = [{"prompt": f"p{i}"} for i in range(12)]
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    copy = Rehearsal(tmp_path / "rehearsal").prompts(str(source))
    assert copy is not None
    assert [json.loads(line) for line in open(copy).read().splitlines()] == rows[:PROMPT_ROWS]


def test_a_broken_jsonl_line_is_refused_with_its_line_number(tmp_path):
    source = tmp_path / "prompts.jsonl"
    source.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(RecipeError, match=r"prompts\.jsonl:2 is not valid JSON"):
        Rehearsal(tmp_path / "rehearsal").prompts(str(source))
