"""Running a recipe's stages in order, skipping the finished ones, and reporting.

``report.json`` in the run directory::

    {"recipe": path, "rehearse": bool,
     "stages": [{"name", "status": "ok" | "skipped" | "failed", "seconds", "outputs": [paths]}],
     "metrics": {metric: value or table}}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdm_core.errors import RdmError, RecipeError
from rdm_core.run.records import fingerprint_key, is_current, read_record, write_record
from rdm_core.run.stage import Stage, StageContext, StageResult


@dataclass
class StageReport:
    """One row of the final table and of ``report.json``."""

    name: str
    status: str
    seconds: float
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


def all_stages() -> list[Stage]:
    """Core stages and every plugin's, in run order."""
    from rdm_core.plugins import registry
    from rdm_core.run.core_stages import CORE_STAGES

    stages: list[Stage] = [cls() for cls in CORE_STAGES]
    for entry in registry("stages").entries():
        stage = entry.resolve()()
        if not isinstance(stage, Stage):
            raise RdmError(
                f"stage {entry.name!r} of plugin {entry.plugin} does not implement the Stage protocol.",
                "give it name, order, applies(), key(), outputs() and run() (rdm_core.run.stage.Stage)",
            )
        stages.append(stage)
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise RdmError(f"two stages share a name: {names}.", "rename one of the plugins' stages")
    return sorted(stages, key=lambda s: s.order)


def select_stages(recipe: Any, wanted: list[str] | None, available: list[Stage] | None = None) -> list[Stage]:
    """The stages the recipe declares, optionally restricted to ``wanted`` (``--stages a,b``)."""
    pool = all_stages() if available is None else sorted(available, key=lambda s: s.order)
    declared = [s for s in pool if s.applies(recipe)]
    if wanted is None:
        return declared
    names = [s.name for s in declared]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise RecipeError(f"--stages names {unknown}, not stages of this recipe.", f"choose from: {', '.join(names)}")
    return [s for s in declared if s.name in wanted]


def run_stages(
    recipe: Any,
    recipe_ref: str,
    *,
    stages: list[str] | None = None,
    rehearse: bool = False,
    on_stage: Any = None,
    extra: dict[str, Any] | None = None,
    available: list[Stage] | None = None,
) -> tuple[list[StageReport], dict[str, Any], Path]:
    """Run (or skip) every selected stage; write ``report.json``.

    Args:
        recipe: the loaded (and, for rehearsals, transformed) recipe.
        recipe_ref: how the user named the recipe (recorded in the report).
        stages: stage names to run; ``None`` runs every stage the recipe declares. Stages left
            out still count as done when their records are current (later ones build on them).
        rehearse: recorded in the report and passed to the stages.
        on_stage: called with ``(stage name, "start" | StageReport)`` for progress output.
        extra: more top-level keys of ``report.json`` (a rehearsal's stand-ins).
        available: the stages to choose from (default: core and plugin stages).

    Returns:
        ``(rows, metrics, report path)``. A failed stage ends the run after writing the report.

    Raises:
        RunLockedError: another process writes into the run directory (one line naming it).
    """
    from rdm_core.run_dir import claimed_run

    # every stage writes into the run directory: one `rdm run` / `rdm train` at a time
    with claimed_run(recipe, command=f"rdm run {recipe_ref}") as run_dir:
        return _run_claimed(recipe, recipe_ref, run_dir, stages, rehearse, on_stage, extra, available)


def _run_claimed(
    recipe: Any,
    recipe_ref: str,
    run_dir: Path,
    stages: list[str] | None,
    rehearse: bool,
    on_stage: Any,
    extra: dict[str, Any] | None,
    available: list[Stage] | None,
) -> tuple[list[StageReport], dict[str, Any], Path]:
    ctx = StageContext(run_dir=run_dir, rehearse=rehearse)
    chosen = {s.name for s in select_stages(recipe, stages, available)}
    rows: list[StageReport] = []
    upstream: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    failure: BaseException | None = None
    for stage in select_stages(recipe, None, available):
        outputs = stage.outputs(recipe, ctx)
        fp = fingerprint_key(stage.key(recipe), upstream)
        record = read_record(run_dir, stage.name)
        if is_current(record, fp, outputs) or stage.name not in chosen:
            result = StageResult(**(record.get("result") or {}))
            if stage.name in chosen:
                rows.append(StageReport(stage.name, "skipped", 0.0, result.outputs))
                if on_stage:
                    on_stage(stage.name, rows[-1])
            if record:
                upstream.append(record)
            ctx.results[stage.name] = result
            metrics.update(result.metrics)
            continue
        if on_stage:
            on_stage(stage.name, "start")
        start = time.perf_counter()
        try:
            result = stage.run(recipe, ctx)
        except Exception as exc:  # recorded as failed, then raised to the CLI
            rows.append(StageReport(stage.name, "failed", time.perf_counter() - start, [], _one_line(exc)))
            if on_stage:
                on_stage(stage.name, rows[-1])
            failure = exc
            break
        seconds = time.perf_counter() - start
        record = write_record(run_dir, stage.name, fp, "ok", outputs, _plain(result))
        upstream.append(record)
        ctx.results[stage.name] = result
        metrics.update(result.metrics)
        rows.append(StageReport(stage.name, "ok", seconds, result.outputs))
        if on_stage:
            on_stage(stage.name, rows[-1])
    report = write_report(run_dir, recipe_ref, rehearse, rows, metrics, extra or {})
    if failure is not None:
        raise failure
    return rows, metrics, report


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, RdmError):
        return exc.problem
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _plain(result: StageResult) -> dict[str, Any]:
    return {"outputs": [str(o) for o in result.outputs], "metrics": result.metrics}


def write_report(
    run_dir: Path,
    recipe_ref: str,
    rehearse: bool,
    rows: list[StageReport],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """``<run_dir>/report.json`` (format in the module docstring)."""
    from rdm_core.artifacts import write_json

    path = Path(run_dir) / "report.json"
    stages = []
    for r in rows:
        row: dict[str, Any] = {"name": r.name, "status": r.status, "seconds": round(r.seconds, 3), "outputs": r.outputs}
        if r.error:
            row["error"] = r.error
        stages.append(row)
    body = {"recipe": recipe_ref, "rehearse": rehearse, "stages": stages, "metrics": metrics, **(extra or {})}
    write_json(path, body)
    return path
