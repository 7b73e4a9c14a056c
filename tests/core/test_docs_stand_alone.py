"""The project's files stand alone: users do not have the maintainers' reference notes, so nothing
cites them (by file name, section number or path); docs/method.md and the paper are the citations.
Tests may read the prompt files under ``../shared/data/prompts`` (that path exists beside every
clone), and nothing else from there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("rdm_core", "plugins", "docs", "recipes", "scripts", "benchmarks", "tests", "README.md")
SKIPPED_PARTS = {"__pycache__", "build", "dist", ".venv", "results"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ".cfg", ""}

NOTES = "|".join(("SPEC", "ENCODERS", "GENERATORS", "PMF", "DESIGN"))
BY_NAME = (
    rf"\b(?:{NOTES})\.md\b"  # a notes file by name
    r"|\bSPEC\s*(?:§|\d)"  # a section of the method notes
)
CITATION = re.compile(BY_NAME + r"|(?:\.\./|/work/)shared\b")
#: tests may read the shared prompt files, nothing else from that folder
CITATION_IN_TESTS = re.compile(BY_NAME + r"|(?:\.\./|/work/)shared\b(?!/data/prompts)")


def _files() -> list[Path]:
    out: list[Path] = []
    for top in SCANNED:
        path = ROOT / top
        candidates = [path] if path.is_file() else path.rglob("*")
        for p in candidates:
            parts = set(p.relative_to(ROOT).parts)
            if p.is_file() and p.suffix in TEXT_SUFFIXES and not parts & SKIPPED_PARTS:
                if not any(part.endswith(".egg-info") for part in parts):
                    out.append(p)
    return out


def test_nothing_cites_the_maintainers_notes():
    hits = []
    for path in _files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        pattern = CITATION_IN_TESTS if path.is_relative_to(ROOT / "tests") else CITATION
        for lineno, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()[:100]}")
    assert not hits, "cite docs/method.md or the paper instead:\n" + "\n".join(hits)


def test_the_pattern_catches_each_kind_of_citation():
    for line in (
        "see ENCODERS.md for the pooling",
        "(SPEC 5.3)",
        "SPEC §2.1 defines it",
        "read ../shared/SPEC.md",
        "/work/shared/notes",
    ):
        assert CITATION.search(line) and CITATION_IN_TESTS.search(line), line
    for line in ("SPECS[name]", "spec=SPEC", "docs/method.md", "MY_SPEC", "SPEC_DIM = 4"):
        assert not CITATION.search(line) and not CITATION_IN_TESTS.search(line), line
    prompts = "ROOT / '../shared/data/prompts/geneval.txt'"
    assert CITATION.search(prompts) and not CITATION_IN_TESTS.search(prompts)
