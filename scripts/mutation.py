"""Mutation checks of rdm's numerical core with mutmut (run by ``scripts/mutants``; not part of CI).

    scripts/mutants                   # list the targets
    scripts/mutants balance           # mutate the controller, run its narrowest tests, report
    scripts/mutants balance --resume  # continue an interrupted run
    scripts/mutants gradcache --sample 05  # only mutants numbered ...0 or ...5 (a fixed fifth)
    scripts/mutants balance --report  # rewrite the result JSON (e.g. after explaining a survivor)

mutmut imports the code under test by the dotted name it derives from the file path and only
understands ``./``, ``src/`` or ``source/`` layouts, while rdm's plugins live in ``plugins/``. Each
target is therefore staged in a throwaway project outside the tree (``$RDM_MUTANTS_DIR``, default
``~/.cache/rdm/mutants/<target>``): ``src/<package>`` copies of the packages to mutate, ``tests/``
and ``pyproject.toml`` with a ``[tool.mutmut]`` section naming the files and the tests. Everything
else (rdm_core, the other plugins, entry points) still comes from this checkout's install.

Runs use one worker (the machine is shared) and only in-process tests: a subprocess would import
the unmutated code. Error-message text is left alone (see ``MESSAGE_LINES``). The result (counts, score, and the diff of every surviving mutant, marked
with the reason when ``benchmarks/mutants_equivalent.json`` explains it as equivalent) goes to
``benchmarks/results/mutants/<target>.json``; the exit status is 1 when a survivor is unexplained.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "mutants"
EQUIVALENT = ROOT / "benchmarks" / "mutants_equivalent.json"
SAMPLE_FILE = "rdm-sample.txt"  # in the staged project: the --sample digits of its last run

# Error-message text is not mutated: a `raise X(` line, or a line holding only a prose string
# literal (a message continued on its own line). The wording of errors is checked by the error
# tests' match= patterns; these runs are about the numbers.
MESSAGE_LINES = [r"raise \w+\(", r'^\s*f?"[^"]*\s[^"]*",?\s*$']

# target -> (files to mutate as <package>/<file>, the narrowest tests that should kill them)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "mmd_estimator": (["rdm_mmd/estimator.py"], ["tests/mmd/test_mmd_estimator.py", "tests/mmd/test_mmd_nystrom.py"]),
    "nystrom": (["rdm_mmd/nystrom.py"], ["tests/mmd/test_mmd_nystrom.py"]),
    "balance": (["rdm_mmd/balance.py"], ["tests/mmd/test_mmd_balance.py"]),
    "gradcache": (
        ["rdm_gradcache/gradcache.py", "rdm_gradcache/step.py"],
        ["tests/gradcache/test_gradcache_algorithm.py", "tests/gradcache/test_plan_and_helpers.py"],
    ),
    "eval_metrics": (
        ["rdm_eval/sliced.py", "rdm_eval/rff.py", "rdm_eval/metrics.py"],
        ["tests/eval/test_eval_sliced.py", "tests/eval/test_eval_rff.py"],
    ),
    "checkpoint_state": (
        ["rdm_gradcache/state.py", "rdm_core/checkpoints.py"],
        [
            "tests/gradcache/test_plan_and_helpers.py",
            "tests/core/test_checkpoints.py",
            "tests/core/test_artifacts.py",
            "tests/gradcache/test_max_seconds.py",
        ],
    ),
}


def package_dir(package: str) -> Path:
    """Where a package lives in this checkout (``rdm_core/`` or ``plugins/<package>/``)."""
    for candidate in (ROOT / package, ROOT / "plugins" / package):
        if (candidate / "__init__.py").is_file():
            return candidate
    raise SystemExit(f"mutants: no package {package!r} in {ROOT} or {ROOT / 'plugins'}")


def stage(target: str, work: Path) -> None:
    """Lay out ``work`` as a src/ project for mutmut: packages, tests, pyproject + [tool.mutmut]."""
    files, tests = TARGETS[target]
    packages = sorted({f.split("/")[0] for f in files})
    shutil.rmtree(work, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for package in packages:
        shutil.copytree(package_dir(package), work / "src" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    config = {
        "source_paths": [f"src/{p}" for p in packages],
        "only_mutate": [f"src/{f}" for f in files],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:xdist", "-p", "no:cacheprovider"],
        "use_git_change_detection": False,
        "do_not_mutate_patterns": MESSAGE_LINES,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + "\n".join(lines) + "\n")


def mutmut(work: Path, *args: str, capture: bool = False) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args], cwd=work, env=env, text=True, capture_output=capture, check=False
    )
    return done.stdout if capture else ""


def report(target: str, work: Path) -> dict:
    """Counts, score and survivors of a finished run (and which survivors are explained)."""
    sample_file = work / SAMPLE_FILE
    sample = (sample_file.read_text().strip() if sample_file.is_file() else "") or None
    mutmut(work, "export-cicd-stats", capture=True)
    counts = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = mutmut(work, "results", "--all", "true", capture=True)
    survivors = re.findall(r"^\s*(\S+): survived$", listing, flags=re.M)
    untested = re.findall(r"^\s*(\S+): no tests$", listing, flags=re.M)
    explained = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.is_file() else {}
    tested = counts["killed"] + counts["survived"] + counts["timeout"] + counts["suspicious"] + counts["segfault"]
    out = {
        "target": target,
        "files": TARGETS[target][0],
        "tests": TARGETS[target][1],
        # None: every mutant; else the last digits of the mutant numbers run (a deterministic sample,
        # the rest count in "total" but not in the score)
        "sample": sample,
        "counts": counts,
        # killed (timeouts and crashes count as killed: the mutant did not pass) over mutants with tests
        "score": round((tested - counts["survived"]) / tested, 4) if tested else None,
        "no_tests": untested,  # functions no selected test calls (not in the score)
        "survivors": [
            {"name": name, "equivalent": explained.get(name), "diff": mutmut(work, "show", name, capture=True)}
            for name in survivors
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{target}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutants", description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS), help="what to mutate (omit to list)")
    parser.add_argument("--resume", action="store_true", help="continue the staged run instead of restarting")
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the result JSON from the staged run (e.g. new reasons)"
    )
    parser.add_argument(
        "--sample",
        metavar="DIGITS",
        help="run only the mutants whose number ends in one of DIGITS (e.g. 05: a fixed fifth), for slow targets",
    )
    args = parser.parse_args(argv)
    if args.target is None:
        for name, (files, tests) in TARGETS.items():
            print(f"{name:17s} {', '.join(files)}  <-  {' '.join(tests)}")
        return 0
    if importlib.util.find_spec("mutmut") is None:
        print("mutants: mutmut is not installed; pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    work = Path(os.environ.get("RDM_MUTANTS_DIR", Path.home() / ".cache" / "rdm" / "mutants")) / args.target
    if args.sample and not args.sample.isdigit():
        parser.error("--sample takes digits, e.g. 05")
    if not args.report:
        if not (args.resume and (work / "mutants").is_dir()):
            stage(args.target, work)
        selection = [f"*__mutmut_*[{args.sample}]"] if args.sample else []
        (work / SAMPLE_FILE).write_text(args.sample or "")
        mutmut(work, "run", "--max-children", "1", *selection)
    out = report(args.target, work)
    c = out["counts"]
    print(
        f"\n{args.target}: score {out['score']}  killed {c['killed']}  survived {c['survived']}  "
        f"timeout {c['timeout']}  no tests {c['no_tests']}  total {c['total']}"
    )
    unexplained = [s["name"] for s in out["survivors"] if not s["equivalent"]]
    for name in unexplained:
        print(f"  unexplained survivor: {name}")
    print(f"details: {RESULTS / (args.target + '.json')}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
